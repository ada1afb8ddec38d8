# expect: failed row
# says: `os.mkdir` is not allowed
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    G["mkdir"]("{{MARKER}}")
    return {"id": "made a directory"}
