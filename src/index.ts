// bptrain's public API: models, datasets, the trainer, and the model file.
export { Model, createModel, computeGradient, normalizeInPlace, loadModel, saveModel, parseModelText, modelToText, computeNormalization, resolveModelSpec, MODEL_FORMAT, MODEL_VERSION } from './model.js';
export type { ModelOptions, ModelFile, TargetInfo, Normalization, InputFields } from './model.js';
export { Trainer, resolveFitOptions } from './trainer.js';
export type { TrainerOptions, FitOptions, ResolvedFitOptions, EpochStats, StepProgress, History, Metrics } from './trainer.js';
export { makeDataset, toShared, splitDataset } from './dataset.js';
export type { Dataset } from './dataset.js';
export { Rng } from './rng.js';
export { OptionError, DataError, ModelFormatError, NumericError, WorkerError } from './errors.js';
export type { HiddenActivation, OutputActivation, Activation, Loss } from './layout.js';
export { paramViews } from './layout.js';
export type { ParamViews, NetSpec } from './layout.js';
export { loadCheckpoint, saveCheckpoint, CheckpointError } from './checkpoint.js';
export type { Checkpoint } from './checkpoint.js';
