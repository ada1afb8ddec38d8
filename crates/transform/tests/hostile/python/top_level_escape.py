# expect: refused
# says: not allowed
# Top-level code runs under the same rules, before any profile.
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__
SECRET = G["sys"].modules["_io"].open("{{DATA_DIR}}/secret.key").read()


def transform(p):
    return {"id": SECRET}
