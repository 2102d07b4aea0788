"""One run: its configuration (`config`, `settings`), its phases (`runner`), and what it leaves (`results`,
`record`, `figures`, `summary`, `fingerprint`).

The other rooms build on this one: `harness.research` runs many, `harness.submission` makes them a
submission and reruns one; neither of those imports the other.
"""
