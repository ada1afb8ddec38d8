# expect: failed row
# says: `os.kill` is not allowed
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    G["kill"](G["getppid"](), 9)
    return {"id": "killed"}
