// expect: failed row
// says: output limit of
// A value that is small in memory but huge when read: each level refers twice to the one below.
function transform(p) {
  let v = ["leaf"];
  for (let i = 0; i < 60; i++) v = [v, v];
  return { id: "x", j: v };
}
