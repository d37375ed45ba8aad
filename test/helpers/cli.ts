// The kvrouter CLI from the sources, for tests that run it as a process (`node ...CLI args`).
// bin/kvrouter.js runs the build in dist/; test/package/pack.test.ts covers that path.
export const CLI: readonly string[] = ['--import', 'tsx', 'src/cli/main.ts'];
