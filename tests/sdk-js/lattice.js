// Loads OpenLattice's official JS SDK (npm `lattice` 0.98.0) in Node and configures it for the
// simulator named by the environment.
//
// The SDK ships one browser bundle: it wraps itself with the global `self` and sends requests
// through `XMLHttpRequest` (axios' browser adapter is the only one bundled). Node 20 has
// neither, so `self` is the global object and `XMLHttpRequest` is `xhr2`, an implementation of
// it over Node's http module. The SDK's own code runs unchanged.
'use strict';

const util = require('node:util');

// The SDK logs failed requests with their axios config, Authorization header included. Test
// output never shows a token: console output is redacted before the SDK binds to it.
for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
  const original = console[method].bind(console);
  console[method] = (...args) => {
    original(util.format(...args).replace(/Bearer\s+[A-Za-z0-9._~+/=-]+/g, 'Bearer [redacted]'));
  };
}

globalThis.self = globalThis;
globalThis.XMLHttpRequest = require('xhr2');
// The SDK logs every failed request at ERROR, expected failures included. Its logger
// (loglevel, bundled) takes a level persisted in `window.localStorage` under `loglevel:<name>`:
// silent, so the test output shows the tests.
globalThis.window = {
  localStorage: new Proxy({}, {
    get: (target, key) => (String(key).startsWith('loglevel') ? 'SILENT' : target[key]),
  }),
};

const Lattice = require('lattice');

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: start \`orgops simulate --vendor openlattice\` and export its URL and tokens `
      + '(scripts/test does this)',
    );
  }
  return value;
}

const baseUrl = requiredEnv('OPENLATTICE_BASE_URL');
const adminToken = requiredEnv('OPENLATTICE_TOKEN');
const userToken = requiredEnv('OPENLATTICE_USER_TOKEN');

// An error that says what failed without the request's headers (axios errors carry the
// Authorization header in `config`, and the test reporter prints what a test throws).
class CallFailed extends Error {
  constructor(name, e) {
    const status = e && e.response ? e.response.status : undefined;
    const data = e && e.response ? e.response.data : undefined;
    super(status === undefined
      ? `${name} failed: ${e && e.message ? e.message : e}`
      : `${name} failed with ${status}: ${JSON.stringify(data)}`);
    this.response = status === undefined ? undefined : { status, data };
  }
}

// One of the SDK's APIs (OrganizationsApi unless named), called as `token` (the SDK keeps one
// configuration; it builds a new HTTP client when the token changes).
function as(token, apiName = 'OrganizationsApi') {
  Lattice.configure({ baseUrl, authToken: token });
  const api = Lattice[apiName];
  if (!api) {
    throw new Error(`the SDK has no ${apiName}`);
  }
  return new Proxy(api, {
    get: (target, name) => {
      const fn = target[name];
      if (typeof fn !== 'function') {
        return fn;
      }
      return (...args) => fn(...args).catch((e) => {
        throw new CallFailed(String(name), e);
      });
    },
  });
}

// The HTTP status and body of a call that must fail.
async function failure(promise) {
  try {
    await promise;
  }
  catch (e) {
    if (e && e.response) {
      return { status: e.response.status, data: e.response.data };
    }
    throw e;
  }
  throw new Error('the call succeeded but was expected to fail');
}

module.exports = {
  Lattice,
  as,
  failure,
  adminToken,
  userToken,
  Models: Lattice.Models,
  Types: Lattice.Types,
};
