// Several shards on one worker thread, the coordinator's side: each shard's messages reach only its
// listener, the thread ends only once every shard on it has been told to terminate, and a thread
// lost on its own is reported to the shards not being stopped, once each.
import { describe, expect, it } from "vitest";
import type { FromShard, ToShard } from "../../src/shard/protocol.js";
import { ShardThreadPorts, type ShardEnvelope } from "../../src/shard/thread.js";

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
