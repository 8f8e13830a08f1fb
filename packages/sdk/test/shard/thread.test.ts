// Several shards on one worker thread, the coordinator's side: each shard's messages reach only its
// listener, the thread ends only once every shard on it has been told to terminate, and a thread
// lost on its own is reported to the shards not being stopped, once each.
import { describe, expect, it } from "vitest";
import type { FromShard, ToShard } from "../../src/shard/protocol.js";
import type { ShardPort } from "../../src/shard/host.js";
import { ShardThreadMap, ShardThreadPorts, type ShardEnvelope } from "../../src/shard/thread.js";

function fakeThread() {
  const sent: ShardEnvelope<ToShard>[] = [];
  let deliver: (env: ShardEnvelope<FromShard>) => void = () => {};
  let ends = 0;
  const thread = new ShardThreadPorts({
    post: (env) => sent.push(env),
    onMessage: (l) => (deliver = l),
    end: async () => {
      ends++;
    },
  });
  return { thread, sent, deliver: (env: ShardEnvelope<FromShard>) => deliver(env), ends: () => ends };
}

describe("ShardThreadPorts", () => {
  it("routes each shard's messages both ways by its number", () => {
    const t = fakeThread();
    const [a, b] = [t.thread.port(1), t.thread.port(3)];
    const got: [number, FromShard][] = [];
    a.onMessage((m) => got.push([1, m]));
    b.onMessage((m) => got.push([3, m]));
    a.postMessage({ t: "exit" });
    b.postMessage({ t: "abort", seq: 7 });
    expect(t.sent).toEqual([{ shard: 1, m: { t: "exit" } }, { shard: 3, m: { t: "abort", seq: 7 } }]);
    t.deliver({ shard: 3, m: { t: "exited" } });
    t.deliver({ shard: 1, m: { t: "exited" } });
    t.deliver({ shard: 5, m: { t: "exited" } }); // no such shard here: dropped
    expect(got).toEqual([[3, { t: "exited" }], [1, { t: "exited" }]]);
  });

  it("ends the thread once, when the last of its shards is terminated; every terminate resolves when it is gone", async () => {
    const t = fakeThread();
    const ports = [t.thread.port(0), t.thread.port(2), t.thread.port(4)];
    let firstDone = false;
    const first = ports[0].terminate().then(() => (firstDone = true));
    const second = ports[1].terminate();
    await new Promise((r) => setTimeout(r, 5));
    expect(t.ends()).toBe(0);
    expect(t.thread.ended).toBe(false);
    expect(firstDone).toBe(false); // one shard is still in use: the thread lives on
    await Promise.all([ports[2].terminate(), first, second]);
    expect(t.ends()).toBe(1);
    expect(firstDone).toBe(true);
    expect(t.thread.ended).toBe(true);
    await ports[0].terminate(); // again: nothing more
    expect(t.ends()).toBe(1);
  });

  it("a thread lost on its own is reported once to each shard not being stopped", async () => {
    const t = fakeThread();
    const ports = [t.thread.port(1), t.thread.port(3)];
    const lost: number[] = [];
    ports[0].onExit(() => lost.push(1));
    ports[1].onExit(() => lost.push(3));
    void ports[0].terminate(); // being stopped: not told
    t.thread.lost(new Error("gone"));
    t.thread.lost(new Error("gone again"));
    expect(lost).toEqual([3]);
  });
});

describe("ShardThreadMap", () => {
  const placement = (count: number, firstHere: boolean, shards: number) => {
    const started: number[] = [];
    const where = new Map<ShardPort, string>();
    const map = new ShardThreadMap(
      count,
      firstHere,
      () => {
        const p = { postMessage() {}, onMessage() {}, onExit() {}, terminate: async () => {} } as ShardPort;
        where.set(p, "here");
        return p;
      },
      (t) => {
        started.push(t);
        return fakeThread().thread;
      },
    );
    const ports = Array.from({ length: shards }, (_, i) => map.spawn(i));
    return { started, here: ports.map((p) => where.get(p) === "here") };
  };

  it("puts shard i on thread i mod threads: thread 0 here, each other thread started once", () => {
    expect(placement(2, true, 5)).toEqual({ started: [1], here: [true, false, true, false, true] });
    expect(placement(3, true, 7)).toEqual({ started: [1, 2], here: [true, false, false, true, false, false, true] });
    expect(placement(2, false, 4)).toEqual({ started: [0, 1], here: [false, false, false, false] });
    expect(placement(8, true, 3)).toEqual({ started: [1, 2], here: [true, false, false] });
  });

  it("refuses a thread count that is not an integer ≥ 1", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => placement(bad, true, 1)).toThrow(/threads must be an integer ≥ 1/);
  });
});
