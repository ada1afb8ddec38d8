// expect: failed row
// says: time limit of
function transform(p) {
  const inner = {};
  Object.defineProperty(inner, "deep", { enumerable: true, get() { for (;;) {} } });
  return { id: "x", j: { a: [1, 2, inner] } };
}
