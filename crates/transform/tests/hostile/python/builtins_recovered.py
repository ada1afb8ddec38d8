# expect: failed row
# says: `open` is not allowed
# The real builtins (with open and the unguarded __import__) recovered from a loaded module's globals.
B = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["__builtins__"]


def transform(p):
    return {"id": B["open"]("{{DATA_DIR}}/secret.key").read()}
