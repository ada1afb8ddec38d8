# expect: failed row
# says: `open` is not allowed
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    fd = G["open"]("{{DATA_DIR}}/secret.key", 0)
    return {"id": G["read"](fd, 1000).decode()}
