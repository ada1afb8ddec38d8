# expect: failed row
# says: not allowed
sys = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"]


def transform(p):
    # Adding a hook is refused silently by the worker's (the new one is not added); the worker's still
    # refuses what follows.
    sys.addaudithook(lambda *a: None)
    G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__
    G["system"]("touch {{MARKER}}")
    return {"id": "hooked"}
