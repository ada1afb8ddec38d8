// expect: failed row
// says: ReferenceError | not defined | not a function
function transform(p) {
  const probes = [];
  for (const name of ["require", "process", "std", "os", "fetch", "XMLHttpRequest", "Deno", "Bun"]) {
    if (typeof globalThis[name] !== "undefined") probes.push(name);
  }
  if (probes.length) return { id: probes.join(",") };
  return { id: require("fs").readFileSync("{{DATA_DIR}}/secret.key", "utf8") };
}
