/** The text of `src/generated/api.ts` for an OpenAPI document. */
export function generate(doc: unknown): string;
