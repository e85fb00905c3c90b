import { test } from "node:test";
import assert from "node:assert/strict";
import { BuildProgress } from "../../src/ziti/build-progress.js";

test("build progress counts the modules go downloads, then the packages it compiles, with the time so far", () => {
  const p = new BuildProgress();
  const t0 = Date.now();
  for (const l of ["go: downloading github.com/openziti/ziti v1.7.2", "go: downloading github.com/pkg/errors v0.9.1", "something else"]) p.line(l);
  assert.equal(p.describe(t0 + 5_000), "downloading modules: 2 so far (5s)");
  p.compiling(300);
  for (const l of ["internal/goarch", "github.com/openziti/ziti/common/version", "# github.com/x/y", "warning: something", "gopkg.in/yaml.v3"]) p.line(l);
  assert.equal(p.describe(t0 + 95_000), "compiling: 3 of at most 300 packages (2 modules downloaded) (1m35s)");
});
