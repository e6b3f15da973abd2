import { ConfigError } from "./core/errors.js";

/**
 * CodedWarnings reports each of a fixed set of coded process warnings at
 * most once per owner (a middleware, a store), unless switched off by the
 * owner's option: `true` (the default) or `false` for all of them, or an
 * object of codes, `{ CODE: false }`. Node's `--disable-warning=CODE` works
 * too, since they are process warnings (type `FloodgateWarning`).
 */
export class CodedWarnings<Code extends string> {
  readonly #off = new Set<Code>();
  readonly #said = new Set<Code>();
  readonly #hint: string;

  /**
   * `option` is the owner's option value, `name` its name in errors (e.g.
   * `"warnings"`, `"RedisStore.warnings"`), `codes` every code it may report.
   */
  constructor(option: unknown, name: string, codes: readonly Code[]) {
    this.#hint = name;
    if (option === undefined || option === true) return;
    if (option === false) {
      for (const code of codes) this.#off.add(code);
      return;
    }
    if (typeof option !== "object" || option === null || Array.isArray(option)) {
      throw new ConfigError(
        name,
        option,
        "must be true, false or an object of warning codes",
        `leave it out, or pass e.g. ${name.replace(/^.*\./, "")}: { ${codes[0]}: false }`,
      );
    }
    for (const [code, on] of Object.entries(option)) {
      // undefined is as if the code were left out: the warning stays on.
      if (!codes.includes(code as Code) || (on !== undefined && typeof on !== "boolean")) {
        throw new ConfigError(
          `${name}.${code}`,
          on,
          `must be a warning code (${codes.join(", ")}) set to true or false`,
          `name the warning to turn off, e.g. ${name.replace(/^.*\./, "")}: { ${codes[0]}: false }`,
        );
      }
      if (on === false) this.#off.add(code as Code);
    }
  }

  /** warn reports `code` with `message` and how to switch it off, once. */
  warn(code: Code, message: string): void {
    if (this.#off.has(code) || this.#said.has(code)) return;
    this.#said.add(code);
    const option = this.#hint.replace(/^.*\./, "");
    const text = `${message} (Turn this warning off with the option ${option}: { ${code}: false }.)`;
    const proc = (globalThis as { process?: { emitWarning?: unknown } }).process;
    if (typeof proc?.emitWarning === "function") {
      (proc.emitWarning as (m: string, o: { type: string; code: string }) => void)(text, {
        type: "FloodgateWarning",
        code,
      });
    } else {
      console.warn(`FloodgateWarning [${code}]: ${text}`);
    }
  }
}
