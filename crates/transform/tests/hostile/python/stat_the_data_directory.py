# expect: failed row
# says: Permission denied
# only: root
# os.stat is not audited; the data directory (0700, Sluice's) is closed to the script user.
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    return {"id": str(G["stat"]("{{DATA_DIR}}/secret.key"))}
