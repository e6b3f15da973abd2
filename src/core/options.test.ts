import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors.js";
import { checkInteger, checkOptions } from "./options.js";

const place = {
  name: "Thing options",
  kind: "Thing",
  prefix: "Thing.",
  example: "new Thing({ size: 1 })",
};
const allowed = new Set(["size", "timeout", "onEvent"]);

function thrown(call: () => unknown): ConfigError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("did not throw");
}

describe("checkOptions", () => {
  it("accepts an object of known keys, the empty object and an object without a prototype", () => {
    expect(() => checkOptions({ size: 1, onEvent: undefined }, allowed, place)).not.toThrow();
    expect(() => checkOptions({}, allowed, place)).not.toThrow();
    expect(() => checkOptions(Object.create(null), ["size"], place)).not.toThrow();
  });

  it.each([
    [null, "null"],
    [undefined, "undefined"],
    ["size", '"size"'],
    [3, "3"],
    [[{ size: 1 }], "an array"],
    [() => ({}), "a function"],
  ])("refuses %j as the options object, naming it and showing a call that works", (value, got) => {
    const error = thrown(() => checkOptions(value, allowed, place));
    expect(error.option).toBe("Thing options");
    expect(error.value).toBe(value);
    expect(error.message).toBe(
      `floodgate: option "Thing options" must be an object, got ${got}. Fix: new Thing({ size: 1 })`,
    );
  });

  it("names an unknown key with its prefix, its value and the keys there are", () => {
    const error = thrown(() => checkOptions({ size: 1, colour: "red" }, allowed, place));
    expect(error.option).toBe("Thing.colour");
    expect(error.value).toBe("red");
    expect(error.message).toBe(
      'floodgate: option "Thing.colour" is not a Thing option, got "red". Fix: use one of size, timeout, onEvent',
    );
  });

  it("suggests the key a misspelling is near: case, a swapped, dropped or added letter", () => {
    for (const typo of ["Timeout", "timout", "tiemout", "timeouts", "onevent", "onEvnt"]) {
      const error = thrown(() => checkOptions({ [typo]: 1 }, allowed, place));
      expect(error.message, typo).toMatch(/Fix: did you mean (timeout|onEvent)\? use one of size/);
    }
    for (const far of ["limit", "sz", "ttl", "windowMs"]) {
      const error = thrown(() => checkOptions({ [far]: 1 }, allowed, place));
      expect(error.message, far).toMatch(/Fix: use one of size, timeout, onEvent$/);
    }
  });

  it("says when there is only one key, and takes an array as well as a Set", () => {
    const error = thrown(() =>
      checkOptions({ fallbak: 1 }, ["fallback"], { ...place, kind: "keys.header", prefix: "" }),
    );
    expect(error.message).toMatch(
      /"fallbak" is not a keys.header option, got 1\. Fix: did you mean fallback\? keys.header takes only fallback$/,
    );
  });

  it("gives a key known to be mistaken its own fix, but never reads a hint from the prototype", () => {
    const hinted = { ...place, hints: { header: "use proxyHeader" } };
    expect(thrown(() => checkOptions({ header: 1 }, allowed, hinted)).message).toMatch(
      /Fix: use proxyHeader$/,
    );
    expect(thrown(() => checkOptions({ toString: 1 }, allowed, hinted)).message).toMatch(
      /Fix: use one of/,
    );
  });
});

describe("checkInteger", () => {
  it("returns an integer inside the range, the bounds included", () => {
    expect(checkInteger("top", 1, 1, 100, "pass top: 10")).toBe(1);
    expect(checkInteger("top", 100, 1, 100, "pass top: 10")).toBe(100);
  });

  it.each([0, 101, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "10", null, undefined])(
    "refuses %j, naming the option, the range and the fix",
    (value) => {
      const error = thrown(() => checkInteger("top", value, 1, 100, "pass top: 10"));
      expect(error.option).toBe("top");
      expect(error.message).toMatch(
        /^floodgate: option "top" must be an integer from 1 to 100, got .*\. Fix: pass top: 10$/,
      );
    },
  );

  it("says what the number counts when told", () => {
    expect(
      thrown(() => checkInteger("timeout", 0, 1, 60_000, "timeout: 50", "whole milliseconds"))
        .message,
    ).toMatch(/"timeout" must be whole milliseconds from 1 to 60000, got 0/);
  });
});
