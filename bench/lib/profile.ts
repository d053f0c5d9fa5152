/**
 * Reads a V8 .cpuprofile (from `node --cpu-prof`) and says where the time went: self time per
 * function and per package. The service runs from a minified bundle, so positions are mapped
 * back through the bundle's source map (node:module's SourceMap) to the original file and line.
 */
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import path from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  /** Original location (file:line) or the V8 name for builtins and pseudo-frames. */
  where: string;
  /** Function name when known (from the source map or V8). */
  name: string;
  /** Package (`node_modules` name), `app`, `node:internal` or a pseudo-frame such as `(garbage collector)`. */
  area: string;
  selfMs: number;
  /** Share of the profile's non-idle time. */
  selfPercent: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  /** Time not idle: what the process actually spent on CPU. */
  busyMs: number;
  functions: HotSpot[];
  areas: Array<{ area: string; selfMs: number; selfPercent: number }>;
  /**
   * Self time by area, with Node internals and natives charged to the package or app code that
   * called them (fetch's undici internals to the SDK, socket writes to whoever wrote).
   */
  attributedAreas: Array<{ area: string; selfMs: number; selfPercent: number }>;
  /** Inclusive time of the app's own functions (each sample counted once per function on its stack). */
  appInclusive: HotSpot[];
}

interface FrameInfo {
  where: string;
  name: string;
  area: string;
}

/** Frames that are not anybody's code in particular: charged to their nearest caller that is. */
const PASS_THROUGH = new Set(["node:internal", "(native)", "(anonymous)"]);

export function summarizeProfile(file: string, repoRoot: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    // timeDeltas[i] is the time since the previous sample: the time the previous sample's frame ran.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }

  const maps = new Map<string, SourceMap | null>();
  const mapFor = (url: string): SourceMap | null => {
    if (maps.has(url)) return maps.get(url)!;
    let sm: SourceMap | null = null;
    try {
      const jsPath = url.startsWith("file://") ? new URL(url).pathname : url;
      const mapPath = `${jsPath}.map`;
      if (jsPath.endsWith(".js") && existsSync(mapPath))
        sm = new SourceMap(JSON.parse(readFileSync(mapPath, "utf8")));
    } catch {
      sm = null;
    }
    maps.set(url, sm);
    return sm;
  };
  const lineCache = new Map<string, string[] | null>();
  const sourceLine = (file: string, line: number): string => {
    if (!lineCache.has(file)) {
      try {
        lineCache.set(file, readFileSync(file, "utf8").split("\n"));
      } catch {
        lineCache.set(file, null);
      }
    }
    return lineCache.get(file)?.[line]?.trim() ?? "";
  };

  const infos = new Map<number, FrameInfo>();
  const info = (id: number): FrameInfo => {
    const known = infos.get(id);
    if (known) return known;
    const cf = byId.get(id)?.callFrame ?? {
      functionName: "(unknown)",
      url: "",
      lineNumber: 0,
      columnNumber: 0,
    };
    let where = cf.url ? `${cf.url}:${cf.lineNumber + 1}` : cf.functionName || "(anonymous)";
    let name = cf.functionName || "(anonymous)";
    let area = cf.url
      ? "node:internal"
      : cf.functionName.startsWith("(")
        ? cf.functionName
        : "(native)";
    const sm = cf.url ? mapFor(cf.url) : null;
    if (sm) {
      const entry = sm.findEntry(cf.lineNumber, cf.columnNumber) as {
        originalSource?: string;
        originalLine?: number;
        name?: string;
      };
      if (entry && entry.originalSource) {
        const jsPath = cf.url.startsWith("file://") ? new URL(cf.url).pathname : cf.url;
        const abs = path.resolve(
          path.dirname(jsPath),
          entry.originalSource.replace(/^file:\/\//, ""),
        );
        const rel = path.relative(repoRoot, abs);
        const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(rel);
        area = pkg ? pkg[1]! : rel.startsWith("app/") ? "app" : rel;
        where = `${pkg ? `${pkg[1]}/${pkg[2]}` : rel}:${(entry.originalLine ?? 0) + 1}`;
        const text = sourceLine(abs, entry.originalLine ?? 0);
        name = entry.name ?? (guessName(text) || name);
      }
    } else if (cf.url.startsWith("node:")) {
      area = "node:internal";
      where = `${cf.url}:${cf.lineNumber + 1}`;
    }
    const resolved = { where, name, area };
    infos.set(id, resolved);
    return resolved;
  };
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const agg = new Map<string, HotSpot>();
  const attributed = new Map<string, number>();
  const inclusive = new Map<string, HotSpot>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    totalUs += us;
    if (!byId.has(id)) continue;
    if (byId.get(id)!.callFrame.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const { where, name, area } = info(id);
    const key = `${where}|${name}`;
    const cur = agg.get(key);
    if (cur) cur.selfMs += us / 1000;
    else agg.set(key, { where, name, area, selfMs: us / 1000, selfPercent: 0 });

    let owner = area;
    if (PASS_THROUGH.has(area)) {
      for (let p = parent.get(id); p !== undefined; p = parent.get(p)) {
        const a = info(p).area;
        if (!PASS_THROUGH.has(a) && !a.startsWith("(")) {
          owner = a;
          break;
        }
      }
    }
    attributed.set(owner, (attributed.get(owner) ?? 0) + us / 1000);

    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const f = info(n);
      if (f.area !== "app") continue;
      const k = `${f.where}|${f.name}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const c = inclusive.get(k);
      if (c) c.selfMs += us / 1000;
      else inclusive.set(k, { ...f, selfMs: us / 1000, selfPercent: 0 });
    }
  }
  const busyMs = (totalUs - idleUs) / 1000;
  const functions = [...agg.values()].sort((a, b) => b.selfMs - a.selfMs);
  for (const f of functions) {
    f.selfPercent = busyMs > 0 ? Math.round((f.selfMs / busyMs) * 1000) / 10 : 0;
    f.selfMs = Math.round(f.selfMs);
  }
  const areas = new Map<string, number>();
  for (const f of functions) areas.set(f.area, (areas.get(f.area) ?? 0) + f.selfMs);
  const share = (ms: number) => (busyMs > 0 ? Math.round((ms / busyMs) * 1000) / 10 : 0);
  const appInclusive = [...inclusive.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top)
    .map((f) => ({ ...f, selfMs: Math.round(f.selfMs), selfPercent: share(f.selfMs) }));
  return {
    file,
    durationMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busyMs),
    functions: functions.slice(0, top),
    areas: [...areas]
      .map(([area, selfMs]) => ({
        area,
        selfMs,
        selfPercent: busyMs > 0 ? Math.round((selfMs / busyMs) * 1000) / 10 : 0,
      }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, 15),
    attributedAreas: [...attributed]
      .map(([area, ms]) => ({ area, selfMs: Math.round(ms), selfPercent: share(ms) }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, 15),
    appInclusive,
  };
}

/** A function or method name from the source line a frame starts on. */
function guessName(line: string): string {
  const m =
    /(?:function\*?\s+([\w$]+))|(?:(?:const|let|var)\s+([\w$]+)\s*=)|(?:^(?:(?:public|private|protected|static|async|get|set|override)\s+)*([\w$]+)\s*(?:<[^>]*>)?\()|(?:([\w$]+)\s*:\s*(?:async\s*)?(?:function|\())/.exec(
      line,
    );
  return m ? (m[1] ?? m[2] ?? m[3] ?? m[4] ?? "") : "";
}
