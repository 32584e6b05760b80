"""On-chain proof: agents as ERC-1155 tokens and settlements recorded on an EVM chain.

`contracts/` holds the Vyper source and its compiled artifact (`build.py` makes it, a test
checks it is what the source compiles to); `artifact.py` loads the artifact at run time, so no
compiler runs in production.
"""
