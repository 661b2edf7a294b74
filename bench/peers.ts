// Peers suite: the same network, data, batch size and optimiser (plain SGD, same learning rate)
// trained by TensorFlow.js layers' model.fit on its pure-JS 'cpu' backend and on its 'wasm'
// backend, next to bptrain at 1 and 2 threads, all in this run: bptrain and the wasm backend
// (which the target compares) interleaved in rounds, the cpu backend after them.
//
// TF.js is a devDependency (@tensorflow/tfjs-core, -layers, -backend-cpu, -backend-wasm, pinned
// at 4.22.0; not tfjs-node, which is native). It is imported only here and only dynamically, so a
// missing TF.js turns this suite into a skip line rather than a crash. The wasm backend's .wasm
// files are loaded from node_modules (setWasmPaths), never from the network. In Node the wasm
// backend runs single-threaded (tfjs disables its threaded build under Node) with SIMD.
//
// Differences that remain, and are printed with the table: TF.js computes in float32 (its tensors
// are made from the same Float64Array data), bptrain in float64; initial weights come from each
// library's own seeded initialiser (He uniform for the relu layers in both).

import path from 'node:path';
import { createRequire } from 'node:module';
import { Trainer, createModel } from '../src/index.js';
import { LR, PEER_PACKAGES, SEED, installHint, missingPackages, type BenchConfig } from './config.js';
import { measure, measureInterleaved, type Stats, type TaskSpec } from './measure.js';
import type { PeerRow, PeersResult } from './results.js';
import { DataBank, modelOptions, netLabel, weightCount, workload } from './workloads.js';

type TfCore = typeof import('@tensorflow/tfjs-core');
type TfLayers = typeof import('@tensorflow/tfjs-layers');
type TfWasm = typeof import('@tensorflow/tfjs-backend-wasm');

interface Tf { tf: TfCore; tfl: TfLayers; wasm: TfWasm | null; wasmError?: string }

/** Loads TF.js, or says why it cannot. */
async function loadTf(): Promise<Tf | string> {
  let tf: TfCore, tfl: TfLayers;
  try {
    tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-cpu');
    tfl = await import('@tensorflow/tfjs-layers');
  } catch (err) {
    const missing = missingPackages(PEER_PACKAGES);
    return missing.length > 0 ? `TensorFlow.js is missing: ${installHint(missing)}` : `TensorFlow.js did not load (${firstLine(err)})`;
  }
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // The package's main file is dist/tf-backend-wasm.node.js, beside its .wasm files.
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep);
    return { tf, tfl, wasm };
  } catch (err) {
    return { tf, tfl, wasm: null, wasmError: firstLine(err) };
  }
}

export async function runPeers(cfg: BenchConfig, bank: DataBank, log: (line: string) => void): Promise<PeersResult> {
  const w = workload('mnist-b64');
  const data = bank.forWorkload('mnist-b64');
  const batchSize = Math.min(w.batchSize, data.size);
  const base: PeersResult = { network: netLabel(w.layers), batchSize, samples: data.size, rows: [] };
  const loaded = await loadTf();
  if (typeof loaded === 'string') {
    log(`peers: skipped: ${loaded}`);
    return { ...base, skipped: loaded };
  }
  const { tf, tfl, wasm } = loaded;
  const weights = weightCount(w.layers);
  const row = (impl: string, precision: PeerRow['precision'], threads: string, stats: Stats): PeerRow =>
    ({ impl, precision, threads, stats, gflops: (6 * weights * stats.samplesPerSec) / 1e9 });
  const info: NonNullable<PeersResult['tfjs']> = { version: tf.version_core, wasmSimd: null, wasmThreads: null };
  if (loaded.wasmError !== undefined) info.wasmError = loaded.wasmError;

  /** Switches TF.js to `backend`; false (and the reason in info) when it does not start. */
  const useBackend = async (backend: 'cpu' | 'wasm'): Promise<boolean> => {
    let ok: boolean;
    try {
      ok = await tf.setBackend(backend);
      await tf.ready();
    } catch (err) {
      ok = false;
      if (backend === 'wasm') info.wasmError ??= firstLine(err);
    }
    if (!ok || tf.getBackend() !== backend) {
      log(`peers: TF.js backend ${backend} did not start; skipped`);
      if (backend === 'wasm') info.wasmError ??= 'setBackend failed';
      return false;
    }
    if (backend === 'wasm' && wasm !== null) {
      info.wasmSimd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
      info.wasmThreads = wasm.getThreadsCount();
    }
    return true;
  };
  /** A TF.js model of the network on the current backend, as a task, and its disposal. */
  const tfTask = (name: string): { task: TaskSpec; dispose(): void } => {
    const { model, xs, ys } = tfSetup(tf, tfl, data.x, data.y, data.size, w.layers);
    return {
      task: { name, samples: data.size, async: true, fn: () => model.fit(xs, ys, { batchSize, epochs: 1, shuffle: false, verbose: 0 }) },
      // The optimizer keeps a tensor of its own (the learning rate), which model.dispose() leaves.
      dispose() { model.optimizer.dispose(); model.dispose(); xs.dispose(); ys.dispose(); },
    };
  };

  // bptrain at 1 and 2 threads and TF.js wasm, which the target compares, run interleaved in
  // rounds (as the scaling suite), so that the machine's changes of load fall on all three alike.
  // TF.js's pure-JS cpu backend, 4× slower and not part of a target, is timed after them alone.
  const threadCounts = [1, 2];
  const trainers = threadCounts.map((threads) => new Trainer(createModel(modelOptions(w)), { threads }));
  const rows: PeerRow[] = [];
  let wasmRow: PeerRow | null = null;
  try {
    const tasks: TaskSpec[] = threadCounts.map((threads, i) => ({
      name: `bptrain threads=${threads}`, samples: data.size, async: true,
      fn: () => trainers[i].fit(data, { epochs: 1, batchSize, optimizer: 'sgd', lr: LR, shuffle: false }),
    }));
    const wasmOn = wasm !== null && (await useBackend('wasm'));
    const wasmTask = wasmOn ? tfTask('TF.js wasm') : null;
    try {
      log(`peers: bptrain (1 and 2 threads)${wasmOn ? ` and TF.js ${tf.version_core} wasm, interleaved` : ''}: ${base.network}, batch ${batchSize}, ${data.size} samples/task`);
      const stats = await measureInterleaved('peers', cfg.timing, wasmTask !== null ? [...tasks, wasmTask.task] : tasks, cfg.quick);
      threadCounts.forEach((t) => rows.push(row('bptrain', 'float64', String(t), stats.get(`bptrain threads=${t}`)!)));
      if (wasmTask !== null) wasmRow = row('TF.js wasm', 'float32', String(info.wasmThreads ?? '?'), stats.get('TF.js wasm')!);
    } finally {
      wasmTask?.dispose();
    }
  } finally {
    await Promise.all(trainers.map((t) => t.close()));
  }
  if (await useBackend('cpu')) {
    log(`peers: TF.js ${tf.version_core} layers model.fit, backend cpu`);
    const cpu = tfTask('fit');
    try {
      rows.push(row('TF.js cpu', 'float32', '1', (await measure('peers/tfjs-cpu', cfg.timing, [cpu.task])).get('fit')!));
    } finally {
      cpu.dispose();
    }
  }
  if (wasmRow !== null) rows.push(wasmRow);
  return { ...base, rows, tfjs: info };
}

/** A tf.sequential of dense layers equal to the bptrain network, compiled with SGD(LR) and
 *  categorical cross-entropy, and the data as float32 tensors. */
function tfSetup(tf: TfCore, tfl: TfLayers, x: Float64Array, y: Float64Array, n: number, layers: number[]) {
  const model = tfl.sequential();
  for (let k = 1; k < layers.length; k++) {
    const last = k === layers.length - 1;
    model.add(tfl.layers.dense({
      units: layers[k],
      activation: last ? 'softmax' : 'relu',
      ...(k === 1 ? { inputShape: [layers[0]] } : {}),
      kernelInitializer: last ? tfl.initializers.glorotUniform({ seed: SEED }) : tfl.initializers.heUniform({ seed: SEED }),
    }));
  }
  model.compile({ optimizer: tf.train.sgd(LR), loss: 'categoricalCrossentropy' });
  const xs = tf.tensor2d(Float32Array.from(x.subarray(0, n * layers[0])), [n, layers[0]]);
  const ys = tf.tensor2d(Float32Array.from(y.subarray(0, n * layers[layers.length - 1])), [n, layers[layers.length - 1]]);
  return { model, xs, ys };
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0];
}
