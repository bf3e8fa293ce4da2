// An empty WASI 0.2 context for the policy module, like the Rust host's:
// no files, no environment, no arguments, no network, no clock. The guest
// imports these interfaces only because the Rust standard library does. What
// it writes to stdout or stderr is kept (bounded) so a failure can be
// classified, and never reaches the process's own streams.

import { getRandomValues, randomFillSync } from 'node:crypto';

/** The most bytes of guest output kept per instance. */
const MAX_OUTPUT = 4096;
/** The most random bytes one call may ask for. */
const MAX_RANDOM = 1 << 20;

/**
 * The import object for one instance, and the guest's captured output.
 * @param {Record<string, object>} [extra] the host's own interfaces, by name.
 * @returns {{imports: Record<string, object>, output: () => string}}
 */
export function emptyWasi(extra = {}) {
  let captured = '';
  const decoder = new TextDecoder();
  const keep = (bytes) => {
    if (captured.length < MAX_OUTPUT) captured += decoder.decode(bytes).slice(0, MAX_OUTPUT - captured.length);
  };

  class IoError {
    toDebugString() {
      return 'io error';
    }
  }
  class Pollable {
    ready() {
      return true;
    }
    block() {}
  }
  class InputStream {
    read() {
      throw { tag: 'closed' };
    }
    blockingRead() {
      throw { tag: 'closed' };
    }
    subscribe() {
      return new Pollable();
    }
  }
  class OutputStream {
    checkWrite() {
      return 65536n;
    }
    write(bytes) {
      keep(bytes);
    }
    blockingWriteAndFlush(bytes) {
      keep(bytes);
    }
    flush() {}
    blockingFlush() {}
    subscribe() {
      return new Pollable();
    }
  }
  class TerminalInput {}
  class TerminalOutput {}
  const stdin = new InputStream();
  const stdout = new OutputStream();
  const stderr = new OutputStream();

  const imports = {
    'wasi:cli/environment': {
      getEnvironment: () => [],
      getArguments: () => [],
      initialCwd: () => undefined,
    },
    'wasi:cli/exit': {
      exit() {
        // Never let a guest end the thread it runs in: it fails the call.
        throw new Error('the policy module called exit');
      },
    },
    'wasi:cli/stdin': { getStdin: () => stdin },
    'wasi:cli/stdout': { getStdout: () => stdout },
    'wasi:cli/stderr': { getStderr: () => stderr },
    'wasi:cli/terminal-input': { TerminalInput },
    'wasi:cli/terminal-output': { TerminalOutput },
    'wasi:cli/terminal-stdin': { getTerminalStdin: () => undefined },
    'wasi:cli/terminal-stdout': { getTerminalStdout: () => undefined },
    'wasi:cli/terminal-stderr': { getTerminalStderr: () => undefined },
    'wasi:io/error': { Error: IoError },
    'wasi:io/poll': { Pollable, poll: (list) => new Uint32Array(list.map((_, i) => i)) },
    'wasi:io/streams': { InputStream, OutputStream },
    'wasi:random/random': {
      getRandomBytes(len) {
        if (len > MAX_RANDOM) throw new Error(`the policy module asked for ${len} random bytes`);
        return randomFillSync(new Uint8Array(Number(len)));
      },
      getRandomU64: () => getRandomValues(new BigUint64Array(1))[0],
    },
    'wasi:random/insecure-seed': {
      insecureSeed: () => [...getRandomValues(new BigUint64Array(2))],
    },
  };
  // The host's own interfaces (Greenlight's `crypto`) beside WASI's.
  Object.assign(imports, extra);
  // An interface outside this set is refused by name at instantiation.
  const guarded = new Proxy(imports, {
    get(target, name) {
      if (typeof name === 'string' && !Object.hasOwn(target, name)) {
        throw new Error(`the component imports \`${name}\`, which Greenlight's empty WASI context does not provide`);
      }
      return target[name];
    },
  });
  return { imports: guarded, output: () => captured };
}
