// A parser for HTTP Structured Field Values (RFC 9651, which obsoletes RFC
// 8941): enough of it to read the IETF rate-limit headers exactly as the
// standard says, so a header that is not a valid structured field is ignored
// as a whole rather than half read.

/** SfToken is a bare token such as `default` (a String is a plain JS string). */
export class SfToken {
  constructor(readonly value: string) {}
}

/** SfBareItem is one value: Integer or Decimal (number), String, Token, Byte Sequence, Boolean, Date. */
export type SfBareItem = number | string | SfToken | Uint8Array | boolean | Date;

/** SfParams are an item's `;key=value` parameters, in order. */
export type SfParams = Map<string, SfBareItem>;

/** SfItem is a bare item with its parameters. */
export interface SfItem {
  readonly value: SfBareItem;
  readonly params: SfParams;
}

/** SfInnerList is a parenthesised list of items with its own parameters. */
export interface SfInnerList {
  readonly items: readonly SfItem[];
  readonly params: SfParams;
}

/** SfMember is one member of a List or one value of a Dictionary. */
export type SfMember = SfItem | SfInnerList;

/** isInnerList tells an inner list from an item. */
export function isInnerList(member: SfMember): member is SfInnerList {
  return "items" in member;
}

/** parseList parses a List field value; it returns undefined when the value is not a valid List. */
export function parseList(input: string): SfMember[] | undefined {
  return attempt(input, (p) => p.list());
}

/** parseDictionary parses a Dictionary field value; undefined when it is not a valid Dictionary. */
export function parseDictionary(input: string): Map<string, SfMember> | undefined {
  return attempt(input, (p) => p.dictionary());
}

/** parseItem parses an Item field value; undefined when it is not a valid Item. */
export function parseItem(input: string): SfItem | undefined {
  return attempt(input, (p) => p.item());
}

/** memberName returns a member's String or Token value, the way rate-limit headers name policies. */
export function memberName(member: SfMember): string | undefined {
  if (isInnerList(member)) return undefined;
  const v = member.value;
  if (typeof v === "string") return v;
  if (v instanceof SfToken) return v.value;
  if (typeof v === "number") return String(v);
  return undefined;
}

class SyntaxFailure extends Error {}

function attempt<T>(input: string, parse: (p: Parser) => T): T | undefined {
  const parser = new Parser(input);
  try {
    parser.skipSpaces();
    const out = parse(parser);
    parser.skipSpaces();
    if (!parser.done()) return undefined;
    return out;
  } catch (error) {
    if (error instanceof SyntaxFailure) return undefined;
    throw error;
  }
}

const DIGIT = /[0-9]/;
const LCALPHA = /[a-z]/;
const KEY_CHAR = /[a-z0-9_\-.*]/;
const ALPHA = /[A-Za-z]/;
// tchar from RFC 9110, plus ":" and "/" which Tokens also allow.
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

class Parser {
  private i = 0;

  constructor(private readonly s: string) {}

  done(): boolean {
    return this.i >= this.s.length;
  }

  private peek(): string {
    return this.s[this.i] ?? "";
  }

  private fail(): never {
    throw new SyntaxFailure();
  }

  skipSpaces(): void {
    while (this.peek() === " ") this.i++;
  }

  private skipOws(): void {
    while (this.peek() === " " || this.peek() === "\t") this.i++;
  }

  list(): SfMember[] {
    const members: SfMember[] = [];
    while (!this.done()) {
      members.push(this.member());
      this.skipOws();
      if (this.done()) return members;
      if (this.peek() !== ",") this.fail();
      this.i++;
      this.skipOws();
      if (this.done()) this.fail();
    }
    return members;
  }

  dictionary(): Map<string, SfMember> {
    const out = new Map<string, SfMember>();
    while (!this.done()) {
      const key = this.key();
      let member: SfMember;
      if (this.peek() === "=") {
        this.i++;
        member = this.member();
      } else {
        member = { value: true, params: this.params() };
      }
      out.set(key, member);
      this.skipOws();
      if (this.done()) return out;
      if (this.peek() !== ",") this.fail();
      this.i++;
      this.skipOws();
      if (this.done()) this.fail();
    }
    return out;
  }

  private member(): SfMember {
    return this.peek() === "(" ? this.innerList() : this.item();
  }

  private innerList(): SfInnerList {
    this.i++;
    const items: SfItem[] = [];
    while (!this.done()) {
      this.skipSpaces();
      if (this.peek() === ")") {
        this.i++;
        return { items, params: this.params() };
      }
      items.push(this.item());
      const c = this.peek();
      if (c !== " " && c !== ")") this.fail();
    }
    return this.fail();
  }

  item(): SfItem {
    const value = this.bareItem();
    return { value, params: this.params() };
  }

  private params(): SfParams {
    const params: SfParams = new Map();
    while (this.peek() === ";") {
      this.i++;
      this.skipSpaces();
      const key = this.key();
      let value: SfBareItem = true;
      if (this.peek() === "=") {
        this.i++;
        value = this.bareItem();
      }
      params.set(key, value);
    }
    return params;
  }

  private key(): string {
    const first = this.peek();
    if (!LCALPHA.test(first) && first !== "*") this.fail();
    const start = this.i;
    while (!this.done() && KEY_CHAR.test(this.peek())) this.i++;
    return this.s.slice(start, this.i);
  }

  private bareItem(): SfBareItem {
    const c = this.peek();
    if (c === "-" || DIGIT.test(c)) return this.number();
    if (c === '"') return this.string();
    if (c === "*" || ALPHA.test(c)) return this.token();
    if (c === ":") return this.bytes();
    if (c === "?") return this.boolean();
    if (c === "@") return this.date();
    if (c === "%") return this.displayString();
    return this.fail();
  }

  private number(): number {
    let sign = 1;
    if (this.peek() === "-") {
      sign = -1;
      this.i++;
    }
    if (!DIGIT.test(this.peek())) this.fail();
    let digits = "";
    let decimal = false;
    while (!this.done()) {
      const c = this.peek();
      if (DIGIT.test(c)) {
        digits += c;
      } else if (c === "." && !decimal) {
        if (digits.length > 12) this.fail();
        decimal = true;
        digits += c;
      } else {
        break;
      }
      this.i++;
      if (!decimal && digits.length > 15) this.fail();
      if (decimal && digits.length > 16) this.fail();
    }
    if (decimal) {
      if (digits.endsWith(".")) this.fail();
      if (digits.length - digits.indexOf(".") - 1 > 3) this.fail();
    }
    return sign * Number(digits);
  }

  private string(): string {
    this.i++;
    let out = "";
    while (!this.done()) {
      const c = this.peek();
      this.i++;
      if (c === "\\") {
        const next = this.peek();
        if (next !== '"' && next !== "\\") this.fail();
        out += next;
        this.i++;
      } else if (c === '"') {
        return out;
      } else {
        const code = c.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) this.fail();
        out += c;
      }
    }
    return this.fail();
  }

  private token(): SfToken {
    const start = this.i;
    this.i++;
    while (!this.done() && TOKEN_CHAR.test(this.peek())) this.i++;
    return new SfToken(this.s.slice(start, this.i));
  }

  private bytes(): Uint8Array {
    this.i++;
    const end = this.s.indexOf(":", this.i);
    if (end < 0) this.fail();
    const text = this.s.slice(this.i, end);
    if (!BASE64.test(text)) this.fail();
    this.i = end + 1;
    return new Uint8Array(Buffer.from(text, "base64"));
  }

  private boolean(): boolean {
    this.i++;
    const c = this.peek();
    if (c !== "0" && c !== "1") this.fail();
    this.i++;
    return c === "1";
  }

  private date(): Date {
    this.i++;
    const seconds = this.number();
    if (!Number.isInteger(seconds)) this.fail();
    return new Date(seconds * 1000);
  }

  private displayString(): string {
    this.i++;
    if (this.peek() !== '"') this.fail();
    this.i++;
    const bytes: number[] = [];
    while (!this.done()) {
      const c = this.peek();
      this.i++;
      if (c === "%") {
        const hex = this.s.slice(this.i, this.i + 2);
        if (!/^[0-9a-f]{2}$/.test(hex)) this.fail();
        bytes.push(Number.parseInt(hex, 16));
        this.i += 2;
      } else if (c === '"') {
        try {
          return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
        } catch {
          return this.fail();
        }
      } else {
        const code = c.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) this.fail();
        bytes.push(code);
      }
    }
    return this.fail();
  }
}
