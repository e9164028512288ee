"""The curves: the contract shared with al_runner, loading, files, reference formats, LCDB."""
