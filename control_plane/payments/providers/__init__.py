"""The two payment providers behind one small Protocol (`providers/base.py`)."""
