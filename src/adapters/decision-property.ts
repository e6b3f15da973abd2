// `req.rateLimit` on Express without a property added to each request.
// Express gives every request its app's prototype (Object.setPrototypeOf),
// and V8 adds a property to such an object on its slow path: 2 to 7 us per
// request measured in an Express 5 middleware on Node 20, more than the whole
// decision. So under Express the decision is kept in `res.locals` and
// `rateLimit` is an accessor defined once on the app's request prototype (the
// root app's, for mounted apps), which reads it from there. Elsewhere it
// stays a plain property.
import type { Decision } from "../core/decision.js";

/** DECISION is the registered symbol under which `res.locals` keeps the request's decision. */
const DECISION: unique symbol = Symbol.for("floodgate.decision") as never;

type Locals = { [DECISION]?: Decision };

/** ExpressLike is the part of an Express request the accessor relies on. */
interface ExpressLike {
  app?: { request?: unknown };
  res?: { locals?: unknown };
  rateLimit?: Decision | undefined;
}

function localsOf(req: ExpressLike): Locals | undefined {
  const locals = req.res?.locals;
  return typeof locals === "object" && locals !== null ? (locals as Locals) : undefined;
}

const accessor: PropertyDescriptor = {
  configurable: true,
  enumerable: false,
  get(this: ExpressLike): Decision | undefined {
    return localsOf(this)?.[DECISION];
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
  const locals = localsOf(r);
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

/**
 * expose defines the accessor once per Express app tree, on its root app's
 * request prototype: a mounted app's request prototype inherits from its
 * parent's, so a decision made in a sub-app still reads after the request
 * falls through to the parent. It declines when something else owns the
 * name on the way.
 */
function expose(proto: object): boolean {
  let root = proto;
  for (;;) {
    if (Object.hasOwn(root, "rateLimit")) {
      if (!exposed.has(root)) return false;
      break;
    }
    const parent: unknown = Object.getPrototypeOf(root);
    if (typeof parent !== "object" || parent === null || !Object.hasOwn(parent, "app")) {
      Object.defineProperty(root, "rateLimit", accessor);
      exposed.add(root);
      break;
    }
    root = parent;
  }
  exposed.add(proto);
  return true;
}
