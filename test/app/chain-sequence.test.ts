/**
 * routes/chain.ts sequence(): a model route's middleware run as one, with hono/combine's `every`
 * semantics for middleware (it replaces `every` there to save async frames per request). Each
 * case runs against both, so a difference between them fails here.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { every } from "hono/combine";
import type { AppEnv } from "../../app/src/http";
import { sequence } from "../../app/src/routes/chain";

function appWith(chain: MiddlewareHandler<AppEnv>, log: string[]) {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    await next();
    log.push(`outer saw ${c.res.status} on ${c.req.routePath}`);
  });
  app.get("/r/:id", chain, (c) => {
    log.push("route");
    return c.text("from the route");
  });
  app.onError((err, c) => {
    log.push(`onError ${err.message}`);
    return c.text("failed", 500);
  });
  return app;
}

const step =
  (name: string, log: string[]): MiddlewareHandler<AppEnv> =>
  async (_c, next) => {
    log.push(`${name} in`);
    await next();
    log.push(`${name} out`);
  };

const combiners: Array<[string, (m: MiddlewareHandler<AppEnv>[]) => MiddlewareHandler<AppEnv>]> = [
  ["sequence", sequence],
  ["hono/combine every", (m) => every(...m)],
];

describe.each(combiners)("%s (a model route's chain)", (_name, combine) => {
  it("runs the middleware in order around the route, and keeps the route's path", async () => {
    const log: string[] = [];
    const app = appWith(combine([step("a", log), step("b", log), step("c", log)]), log);
    const res = await app.request("/r/1");
    expect(await res.text()).toBe("from the route");
    expect(log).toEqual([
      "a in",
      "b in",
      "c in",
      "route",
      "c out",
      "b out",
      "a out",
      "outer saw 200 on /r/:id",
    ]);
  });

  it("ends at a middleware that answers without calling next: its Response is the answer", async () => {
    const log: string[] = [];
    const replay: MiddlewareHandler<AppEnv> = async (c) => {
      log.push("replay");
      return c.text("replayed", 202);
    };
    const app = appWith(combine([step("a", log), replay, step("c", log)]), log);
    const res = await app.request("/r/1");
    expect(res.status).toBe(202);
    expect(await res.text()).toBe("replayed");
    expect(log).toEqual(["a in", "replay", "a out", "outer saw 202 on /r/:id"]);
  });

  it("hands an error, thrown before or after next, to the app's error handler", async () => {
    const log: string[] = [];
    const before: MiddlewareHandler<AppEnv> = async () => {
      throw new Error("refused");
    };
    let res = await appWith(combine([step("a", log), before]), log).request("/r/1");
    expect(res.status).toBe(500);
    expect(log).toEqual(["a in", "onError refused", "outer saw 500 on /r/:id"]);

    log.length = 0;
    const after: MiddlewareHandler<AppEnv> = async (_c, next) => {
      await next();
      throw new Error("late");
    };
    res = await appWith(combine([after, step("b", log)]), log).request("/r/1");
    expect(res.status).toBe(500);
    expect(log).toEqual(["b in", "route", "b out", "onError late", "outer saw 500 on /r/:id"]);
  });

  it("ignores a Response returned after the route answered", async () => {
    const log: string[] = [];
    const late: MiddlewareHandler<AppEnv> = async (c, next) => {
      await next();
      return c.text("too late", 418);
    };
    const res = await appWith(combine([late, step("b", log)]), log).request("/r/1");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("from the route");
  });
});
