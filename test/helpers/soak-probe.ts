/**
 * Preloaded into the demo for the soak test (`--import`): over the IPC
 * channel the test sends "stats", and the probe answers with the heap after
 * a full collection and the process's open handles by type. Nothing else in
 * the demo changes.
 */
import v8 from "node:v8";
import vm from "node:vm";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

process.on("message", (message) => {
  if (message !== "stats") return;
  gc();
  gc();
  const handles: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) handles[kind] = (handles[kind] ?? 0) + 1;
  process.send?.({ heap: process.memoryUsage().heapUsed, handles });
});
