// floodgate's start-up warnings (FloodgateWarning: a forwarded header while
// no proxy is trusted, Express trusting every hop, no client address) are
// expected in the suites that send such requests on purpose. Here they are
// captured instead of printed, so a passing run prints none, and each one is
// checked: a known code, a fix, and the option that switches it off. Tests
// that assert their own warnings still hear them (process.on("warning")).
// FLOODGATE_REFUND_ERROR and FLOODGATE_ON_LIMITED_ERROR (a refund or onLimited
// option that threw) are expected where a test makes one throw. Node's DEP0170 (url.parse of an invalid URL, reached when the hostile-input
// suites send a garbage request target through a framework) is expected too.
// Every other warning is printed by Node's own handler, as before.
import { afterEach, expect } from "vitest";

const CODES = [
  "FLOODGATE_PERMISSIVE_TRUST_PROXY",
  "FLOODGATE_FORWARDED_NOT_TRUSTED",
  "FLOODGATE_NO_CLIENT_ADDRESS",
  "FLOODGATE_REDIS_EVICTION",
  "FLOODGATE_REDIS_CONFIG_UNREADABLE",
];

const printers = process.listeners("warning");
for (const print of printers) process.off("warning", print);
const captured: (Error & { code?: string })[] = [];
process.on("warning", function captureExpectedWarnings(warning: Error & { code?: string }) {
  if (warning.name === "FloodgateWarning" || warning.code === "DEP0170") captured.push(warning);
  else for (const print of printers) print(warning);
});

afterEach(() => {
  for (const warning of captured.splice(0)) {
    if (warning.code === "FLOODGATE_REFUND_ERROR") {
      // A refund option that threw, from the suites that make one throw on purpose.
      expect(warning.message).toMatch(/^the refund option threw or rejected \(refund/);
      continue;
    }
    if (warning.code === "FLOODGATE_ON_LIMITED_ERROR") {
      expect(warning.message).toMatch(/^the onLimited option threw or rejected \(/);
      continue;
    }
    if (warning.code === "DEP0170") {
      expect(warning.message).toMatch(/^The URL .* is invalid/);
      continue;
    }
    expect(CODES, warning.message).toContain(warning.code);
    expect(warning.message).toMatch(/ Fix: \S/);
    expect(warning.message).toContain(`warnings: { ${warning.code}: false }`);
  }
});
