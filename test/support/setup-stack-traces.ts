/**
 * jest setupFiles, in every test file: Node's default depth of stack traces (10 frames) instead
 * of the 100 that jest's environment sets. Pulumi takes a stack trace of every promise it makes
 * (runtime/debuggable.js), and jest maps each frame through source maps: at 100 frames, that was
 * a tenth of the CPU time of a stack's render. Failures still show the frames of the test.
 */
Error.stackTraceLimit = 10;
