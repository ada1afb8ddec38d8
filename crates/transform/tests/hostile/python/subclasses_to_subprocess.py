# expect: failed row
# says: not allowed
# From object's subclasses to os.system and os.popen (subprocess is not loaded; os.popen would load it).
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    G["system"]("touch {{MARKER}}")
    return {"id": G["popen"]("cat {{DATA_DIR}}/secret.key").read()}
