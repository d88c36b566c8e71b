// The CLI's help: each command's usage and the options it takes, in one table each.
/** Each command's usage, printed by `modelpress <command> --help` and, all together, by `modelpress --help`. */
export const COMMAND_USAGE: Record<string, string> = {
  inspect: `  modelpress inspect <model.onnx> [--json]`,
  compress: `  modelpress compress <model.onnx> --recipe <recipe.json> --out <out.onnx> [--external-data] [--report <report.json>] [--report-html <report.html>]
                      [--data <inputs.npz>] [--calibration <inputs.npz>] [--labels <labels.npy>] [--max-samples N] [--batch N]
                      [--shape name=d0,d1,...]... [--dim name=N]... [--value name=X]... [--quiet] [--frontier <dir>]`,
  bench: `  modelpress bench <model.onnx> [<candidate.onnx>] [--batch 1,8,16] [--warmup 10] [--runs 32]
                      [--threads N] [--rounds N] [--budget 60] [--data inputs.npz] [--shape name=B,3,224,224]...
                      [--dim name=N]... [--value name=X]... [--json] [--out result.json]
                      [--profile [--depth 2] [--profile-batch 1]]`,
  eval: `  modelpress eval <reference.onnx> <candidate.onnx> --data <inputs> [--labels <labels>] [--batch N]
                      [--max-samples N] [--metrics top1,top5,mae,rmse,obo,nmae] [--label-output name]
                      [--ctc-blank 0] [--json]`,
  submit: `  modelpress submit <model.onnx> --recipe <recipe.json> --server URL [--key K] [--calibration <inputs>] [--data <inputs>]
                      [--labels <labels>] [--timeout-ms N] [--wait] [--out <out.onnx>] [--report <report.json>] [--report-html <report.html>]
  modelpress submit --job <id> --server URL [--key K] --wait [--out …] [--report …] [--report-html …]
  modelpress submit --job <id> --server URL [--key K] --delete
               a job on a modelpress server: uploads (with a progress bar), follows its progress and time left,
               downloads the result; exits 0/1/2 like compress; Ctrl-C asks whether to cancel the job.
               --delete deletes the job with its models and reports (a running job is canceled first).
               --server defaults to MODELPRESS_SERVER, --key to MODELPRESS_API_KEY; --out implies --wait`,
  passes: `  modelpress passes [<name>]   list the passes a recipe can use, or one pass's options`,
  serve: `  modelpress serve            the HTTP API (docs at /docs)`,
  worker: `  modelpress worker           a job worker (run as many as needed)`,
  migrate: `  modelpress migrate          apply the database migrations`,
  keys: `  modelpress keys create <name>   create an owner and an API key (printed as the last line)
  modelpress keys list            every key: its prefix, name, owner, created, last used or revoked
  modelpress keys revoke <prefix> revoke a key by the prefix \`keys list\` prints (or the whole key)`,
};
const SERVICE_COMMANDS = new Set(['serve', 'worker', 'migrate', 'keys']);
const SERVICE_ENV = `service (configured by env: DATABASE_URL, REDIS_URL, PORT, MODELPRESS_DATA_DIR, MAX_UPLOAD_BYTES,
MAX_RECIPE_BYTES, JOB_TIMEOUT_MS, WORKER_CONCURRENCY, RATE_LIMIT_JOBS_PER_MINUTE, MAX_ACTIVE_JOBS_PER_OWNER):`;

/** Option help: [the option, what it does, the commands it applies to]. */
const MODEL_COMMANDS = ['inspect', 'compress', 'bench', 'eval', 'submit'];
const OPTION_HELP: Array<[string, string, string[]]> = [
  ['model.onnx', `its external data files (if any) are read from the model's directory only; or a bundle
               (.zip, .tar, .tar.gz: one .onnx at the top and its data files), unpacked into a
               private temp dir under TMPDIR (at most MAX_UNPACKED_BYTES; default 4× the bundle,
               at least 1 GiB) and removed once the model is read`, MODEL_COMMANDS],
  ['--external-data', `write <out.onnx> plus one data file <out.onnx>.data (automatic for models over 2 GB;
               also the recipe's "output": {"externalData": true})`, ['compress']],
  ['--data', `representative inputs (.npz keyed by input name, .npy for one-input models, .json,
               or an ONNX test-data directory of input_<i>.pb files);
               used for fidelity after each step and by data-driven passes`, ['compress', 'bench', 'eval', 'submit']],
  ['--calibration', `inputs for data-driven passes (quantization ranges, pruning recovery), same
               formats; default: --data (with a goal: the search part of --data, never the held-out part)`, ['compress', 'submit']],
  ['--frontier', `with a goal recipe ({"goal": …, "search": …}): also write every model of the Pareto
               frontier to this directory, each with its concrete recipe`, ['compress']],
  ['--shape', `fix an input's shape for synthetic inputs (e.g. --shape x=1,3,48,320);
               in bench, B marks the batch dim (e.g. --shape state=2,B,128)`, ['compress', 'bench']],
  ['--dim', 'give a symbolic dimension a size (e.g. --dim batch=8)', ['compress', 'bench']],
  ['--value', 'constant value for a scalar input (e.g. --value sr=16000)', ['compress', 'bench']],
  ['--budget', `seconds of timing per step in bench: without --warmup/--runs/--rounds/--batch, the
               defaults are cut down (never below 2 rounds of 1 warmup + 1 run) from one measured run`, ['bench']],
];
const optionsFor = (commands: readonly string[]): string => {
  const rows = OPTION_HELP.filter(([, , cs]) => cs.some((c) => commands.includes(c)));
  return rows.length === 0 ? '' : `options:\n${rows.map(([o, text]) => `  ${o.length < 12 ? o.padEnd(12) : `${o} `} ${text}`).join('\n')}\n`;
};

export const USAGE = `modelpress — compress ONNX models for deployment

usage:
${Object.keys(COMMAND_USAGE).filter((c) => !SERVICE_COMMANDS.has(c)).map((c) => COMMAND_USAGE[c]).join('\n')}

${SERVICE_ENV}
${[...SERVICE_COMMANDS].map((c) => COMMAND_USAGE[c]).join('\n')}

${optionsFor(MODEL_COMMANDS)}`;

/** One command's usage, with the options it takes (the model-file options apply to the model commands). */
export function commandUsage(command: string): string {
  const service = SERVICE_COMMANDS.has(command);
  const options = optionsFor([command]);
  return `usage:\n${COMMAND_USAGE[command]}\n${service ? `\n${SERVICE_ENV.replace(/:$/, '')}\n` : options ? `\n${options}` : ''}`;
}

/** `--help` or `-h` anywhere before a `--` asks for help (so `keys create --help` never creates a key named --help). */
export function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

