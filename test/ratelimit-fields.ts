// A strict reader of the IETF rate-limit header fields for tests, written
// from RFC 9651's grammar rather than from floodgate's writer: a List whose
// members are Strings with Integer parameters. Anything else throws.

/** FieldMember is one list member: the policy id and its integer parameters. */
export interface FieldMember {
  id: string;
  params: Record<string, number>;
}

/** parseRateLimitList parses a RateLimit or RateLimit-Policy value, throwing on any syntax error. */
export function parseRateLimitList(input: string): FieldMember[] {
  let i = 0;
  const fail = (why: string): never => {
    throw new SyntaxError(`${why} at ${i} in ${JSON.stringify(input)}`);
  };
  const members: FieldMember[] = [];
  for (;;) {
    if (input[i] !== '"') fail("expected a String");
    i++;
    let id = "";
    for (;;) {
      const c = input[i];
      if (c === undefined) fail("unterminated String");
      i++;
      if (c === '"') break;
      if (c === "\\") {
        const next = input[i];
        if (next !== '"' && next !== "\\") fail("bad escape");
        id += next;
        i++;
        continue;
      }
      const code = (c as string).charCodeAt(0);
      if (code < 0x20 || code > 0x7e) fail("character outside a String");
      id += c;
    }
    const params: Record<string, number> = {};
    while (input[i] === ";") {
      i++;
      while (input[i] === " ") i++;
      const key = /^[a-z*][a-z0-9_\-.*]*/.exec(input.slice(i))?.[0] ?? fail("expected a key");
      i += key.length;
      if (input[i] !== "=") fail("expected an Integer value");
      i++;
      const integer = /^-?\d{1,15}/.exec(input.slice(i))?.[0] ?? fail("expected an Integer");
      i += integer.length;
      if (input[i] === ".") fail("a Decimal where an Integer belongs");
      if (key in params) fail("repeated parameter");
      params[key] = Number(integer);
    }
    members.push({ id, params });
    while (input[i] === " " || input[i] === "\t") i++;
    if (i === input.length) return members;
    if (input[i] !== ",") fail("expected a comma");
    i++;
    while (input[i] === " " || input[i] === "\t") i++;
    if (i === input.length) fail("trailing comma");
  }
}
