// `req.rateLimit` on Express without a property added to each request.
// Express gives every request its app's prototype (Object.setPrototypeOf),
// and V8 adds a property to such an object on its slow path: 2 to 7 us per
// request measured in an Express 5 middleware on Node 20, more than the whole
// decision. So under Express the decision is kept in `res.locals` and
// `rateLimit` is an accessor defined once on Express's base request
// prototype, which reads it from there. Elsewhere it stays a plain property.
import type { Decision } from "../core/decision.js";
import { localsOf } from "./stack.js";

/** DECISION is the registered symbol under which `res.locals` keeps the request's decision. */
const DECISION: unique symbol = Symbol.for("floodgate.decision") as never;

type Locals = { [DECISION]?: Decision };

/** ExpressLike is the part of an Express request the accessor relies on. */
interface ExpressLike {
  app?: { request?: unknown };
  res?: { locals?: unknown };
  rateLimit?: Decision | undefined;
}

function decisionsOf(req: ExpressLike): Locals | undefined {
  return localsOf(req.res) as Locals | undefined;
}

const accessor: PropertyDescriptor = {
  configurable: true,
  enumerable: false,
  get(this: ExpressLike): Decision | undefined {
    return decisionsOf(this)?.[DECISION];
  },
  // Assigning req.rateLimit (another middleware, a test) gives the request its own property, as before.
  set(this: object, value: unknown) {
    Object.defineProperty(this, "rateLimit", {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  },
};

/** Prototypes that carry the accessor. */
const exposed = new WeakSet<object>();

/**
 * setDecision makes `req.rateLimit` read `decision`: through `res.locals`
 * when `req` is an Express request whose prototype is its app's request
 * object, else as a plain property.
 */
export function setDecision(req: object, decision: Decision): void {
  const r = req as ExpressLike;
  const proto: unknown = Object.getPrototypeOf(req);
  const locals = decisionsOf(r);
  if (
    locals !== undefined &&
    typeof proto === "object" &&
    proto !== null &&
    proto === r.app?.request &&
    !Object.hasOwn(req, "rateLimit") &&
    (exposed.has(proto) || expose(proto))
  ) {
    locals[DECISION] = decision;
    return;
  }
  r.rateLimit = decision;
}

/** Prototypes where something else owns `rateLimit`: those requests keep a plain property. */
const declined = new WeakSet<object>();

/**
 * expose defines the accessor once per copy of Express, on its base request
 * prototype (the object every app's `request` inherits from, never Node's
 * IncomingMessage.prototype): a request switches app prototypes as it goes
 * through mounted apps, apps called as functions and apps mounted twice, and
 * the decision must read in all of them. It declines, and remembers it, when
 * something else owns the name on the way.
 */
function expose(proto: object): boolean {
  if (declined.has(proto)) return false;
  let at = proto;
  for (;;) {
    if (Object.hasOwn(at, "rateLimit")) {
      if (exposed.has(at)) break;
      declined.add(proto);
      return false;
    }
    if (!Object.hasOwn(at, "app")) {
      // Express's base request defines req.get; Node's own prototypes do not.
      if (typeof Object.getOwnPropertyDescriptor(at, "get")?.value !== "function") {
        declined.add(proto);
        return false;
      }
      Object.defineProperty(at, "rateLimit", accessor);
      exposed.add(at);
      break;
    }
    const parent: unknown = Object.getPrototypeOf(at);
    if (typeof parent !== "object" || parent === null) {
      declined.add(proto);
      return false;
    }
    at = parent;
  }
  exposed.add(proto);
  return true;
}
