# expect: failed row
# says: environment: LC_ALL
# The worker's environment holds nothing of Sluice's (no secret key, no database URL).
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    raise RuntimeError("environment: " + ",".join(sorted(G["environ"])))
