// bptrain's public API: models, datasets, the trainer, and the model file.
export { Model, createModel, computeGradient, normalizeInPlace, loadModel, saveModel, parseModelText, modelToText, computeNormalization, resolveModelSpec, MODEL_FORMAT, MODEL_VERSION, MAX_MODEL_FILE_BYTES } from './model.js';
export type { ModelOptions, ModelFile, TargetInfo, Normalization, InputFields } from './model.js';
export { Trainer, resolveFitOptions } from './trainer.js';
export type { TrainerOptions, FitOptions, EvaluateOptions, PredictOptions, ResolvedFitOptions, EpochStats, StepPhases, StepProgress, History, Metrics } from './trainer.js';
export { makeDataset, toShared, splitDataset } from './dataset.js';
export type { Dataset } from './dataset.js';
// The NDJSON reader the CLI uses, for services that train on the same files (see README).
export { loadDataset, decodeOutput } from './targets.js';
export type { LoadOptions, TargetEncoding, TargetKind } from './targets.js';
export { readRecords } from './ndjson-reader.js';
export type { ReaderOptions, RawRecord } from './ndjson-reader.js';
export type { OptimizerOptions, SgdOptions, AdamOptions } from './optim.js';
export { Rng } from './rng.js';
export type { RngState } from './rng.js';
export { OptionError, DataError, ModelFormatError, NumericError, WorkerError, StateError, isBptrainError } from './errors.js';
export type { BptrainError, BptrainErrorCode } from './errors.js';
export type { HiddenActivation, OutputActivation, Activation, Loss } from './layout.js';
export { paramViews } from './layout.js';
export type { ParamViews, NetSpec, Layout } from './layout.js';
export { loadCheckpoint, saveCheckpoint, CheckpointError } from './checkpoint.js';
export type { Checkpoint, RunSettings } from './checkpoint.js';
