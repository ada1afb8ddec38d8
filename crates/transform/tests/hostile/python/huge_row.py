# expect: failed row
# says: output limit of
def transform(p):
    return {"id": "x" * (3 << 20)}
