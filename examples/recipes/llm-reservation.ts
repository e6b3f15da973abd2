// A reservation around an LLM call: reserve an estimate of the model tokens
// before calling the model, stream the answer, then settle the real count the
// model reported. Over-estimates are given back; an answer that cost more
// than estimated is charged after the fact, into debt if need be (maxDebt).
// The model is a fake stream, so this runs anywhere:
// Run: npx tsx examples/recipes/llm-reservation.ts
import { RateLimiter } from "floodgate";

/** 20,000 model tokens an hour per tenant; a settle may run up to 5,000 into debt. */
const budget = new RateLimiter({
  policy: {
    name: "model-tokens",
    capacity: 20_000,
    refillRate: 20_000,
    interval: "1h",
    maxDebt: 5_000,
  },
});

budget.events.on("settle", (tenant, extra, dropped) => {
  console.log(`  settled ${tenant}: ${extra >= 0 ? "+" : ""}${extra} tokens (dropped ${dropped})`);
});

/** The provider's hidden system prompt: the reason a real count can beat the estimate. */
const SYSTEM_PROMPT_TOKENS = 700;

/** fakeModel streams `answer` words, then returns the usage a provider reports. */
async function* fakeModel(prompt: string, answer: number): AsyncGenerator<string, number> {
  for (let i = 0; i < answer; i++) {
    await Promise.resolve();
    yield i === 0 ? "word" : " word";
  }
  return SYSTEM_PROMPT_TOKENS + Math.ceil(prompt.length / 4) + answer;
}

/**
 * complete is the endpoint: 429 when the estimate does not fit, else the
 * answer streamed as it comes, settled with the real count once it ends.
 */
async function complete(
  tenant: string,
  prompt: string,
  maxTokens: number,
  answer: number,
): Promise<Response> {
  const estimate = Math.ceil(prompt.length / 4) + maxTokens;
  const reservation = await budget.reserve(tenant, { cost: estimate });
  const decision = reservation.decision;
  if (!decision.allowed) {
    return new Response("token budget spent\n", {
      status: 429,
      headers: { "Retry-After": String(Math.ceil(decision.retryAfter / 1000)) },
    });
  }
  const model = fakeModel(prompt, answer);
  const body = new ReadableStream<string>({
    async pull(controller) {
      const next = await model.next();
      if (!next.done) {
        controller.enqueue(next.value);
        return;
      }
      // The real count, once: never retried, and a store failure never throws here.
      await reservation.settle(next.value);
      controller.close();
    },
    // A client that goes away: the estimate stays spent (nothing to settle it with).
  });
  return new Response(body.pipeThrough(new TextEncoderStream()), {
    headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

const calls: [prompt: string, maxTokens: number, answer: number][] = [
  ["Summarise the meeting notes in three lines.", 4_000, 120],
  ["Write the release announcement.", 4_000, 3_900],
  ["Translate the handbook.", 8_000, 7_990],
  // Estimated to fit what is left; the real count takes the bucket 635 into debt.
  ["Draft the contract.", 5_800, 5_795],
  ["Translate the appendix.", 8_000, 10],
];
for (const [prompt, maxTokens, answer] of calls) {
  const response = await complete("acme", prompt, maxTokens, answer);
  const text = await response.text();
  const words = response.ok ? `${text.split(" ").length} words` : text.trim();
  const left = (await budget.peek("acme")).remaining;
  console.log(`${response.status} ${prompt} -> ${words}; ${left} tokens left`);
  if (!response.ok) console.log(`  Retry-After: ${response.headers.get("retry-after")}`);
}
