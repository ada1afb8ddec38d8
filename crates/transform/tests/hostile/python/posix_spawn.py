# expect: failed row
# says: not allowed
posix = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"].modules["posix"]


def transform(p):
    posix.posix_spawn("/bin/sh", ["sh", "-c", "touch {{MARKER}}"], {})
    return {"id": "spawned"}
