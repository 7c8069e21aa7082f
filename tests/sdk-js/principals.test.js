// PrincipalsApi's user look-ups (lattice 0.98.0) against the orgops OpenLattice simulator: how
// orgops turns an OrgMembership's e-mail into a principal id. The server
// (PrincipalDirectoryController) serves them to any valid JWT, admin or not.
'use strict';

const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const test = require('node:test');

const { as, failure, adminToken, userToken } = require('./lattice');

// Seeded users (src/simulator/openlattice/seed.rs); Alice's subject holds a `|`.
const ALICE = 'google-oauth2|104729384756102938475';
const CAROL = 'samlp|orgops|carol';
const ADMIN = 'auth0|orgops-admin';

const run = randomUUID().slice(0, 8);

function principals(token) {
  return as(token, 'PrincipalsApi');
}

// An unsigned JWT (the simulator reads claims, not signatures) for someone new.
function tokenFor(sub, email) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub, email, iat: Math.floor(Date.now() / 1000) })}.`;
}

test('searchUsers finds a user by e-mail, case-insensitively, for a plain user', async () => {
  const found = await principals(userToken).searchUsers({ email: 'ALICE@orgops.example' });
  assert.deepEqual(Object.keys(found), [ALICE]);
  const alice = found[ALICE];
  assert.equal(alice.user_id, ALICE);
  assert.equal(alice.email, 'alice@orgops.example');
  assert.equal(alice.given_name, 'Alice');
  assert.equal(alice.family_name, 'Analyst');
});

test('searchUsers answers an empty object for an e-mail nobody has', async () => {
  const found = await principals(userToken).searchUsers({ email: `nobody-${run}@orgops.example` });
  assert.deepEqual(found, {});
  assert.deepEqual(await principals(userToken).searchUsers({ email: 'alice@orgops' }), {});
});

test('searchUsers takes the wildcard of its documentation, and names', async () => {
  const found = await principals(adminToken).searchUsers({ email: '*@orgops.example' });
  for (const id of [ADMIN, ALICE, CAROL]) {
    assert.ok(found[id], `${id} among ${Object.keys(found)}`);
    assert.match(found[id].email, /@orgops\.example$/);
  }
  const byName = await principals(adminToken).searchUsers({ name: 'Carol*' });
  assert.deepEqual(Object.keys(byName), [CAROL]);
});

test('searchUsers refuses a blank or doubled search with the server\'s 400', async () => {
  for (const fields of [{ email: ' ' }, { email: 'a@b.example', name: 'A' }]) {
    const { status, data } = await failure(principals(userToken).searchUsers(fields));
    assert.equal(status, 400, JSON.stringify(fields));
    assert.equal(data.errors[0].error.type, 'illegalArgument');
    assert.match(data.errors[0].message, /Auth0UserSearchFields/);
  }
});

test('someone who has signed in is found by the e-mail of their token', async () => {
  const sub = `auth0|sdk-${run}`;
  const email = `sdk-${run}@newcomers.example`;
  const self = await principals(tokenFor(sub, email)).getUser(sub);
  assert.equal(self.user_id, sub);
  const found = await principals(userToken).searchUsers({ email: email.toUpperCase() });
  assert.deepEqual(Object.keys(found), [sub]);
});

test('getUser reads one user by principal id, `|` and all', async () => {
  const alice = await principals(userToken).getUser(ALICE);
  assert.equal(alice.user_id, ALICE);
  assert.equal(alice.email, 'alice@orgops.example');
  assert.equal(alice.identities[0].provider, 'google-oauth2');
  const carol = await principals(userToken).getUser(CAROL);
  assert.equal(carol.email, 'carol@orgops.example');
});

test('getUser of an unknown id is the server\'s 500', async () => {
  const { status, data } = await failure(principals(userToken).getUser(`auth0|nobody-${run}`));
  assert.equal(status, 500);
  assert.equal(data.errors[0].error.type, 'otherError');
  assert.equal(data.errors[0].message, `NoSuchElementException: Key auth0|nobody-${run} is missing in the map.`);
});

test('getAllUsers and getUsers answer maps keyed by principal id', async () => {
  const all = await principals(userToken).getAllUsers();
  for (const id of [ADMIN, ALICE, CAROL]) {
    assert.equal(all[id].user_id, id);
  }
  const some = await principals(userToken).getUsers([ALICE, `auth0|nobody-${run}`]);
  assert.deepEqual(Object.keys(some), [ALICE]);
});

test('the user look-ups need a valid JWT', async () => {
  const { status, data } = await failure(principals('not-a-jwt').searchUsers({ email: 'alice@orgops.example' }));
  assert.equal(status, 401);
  assert.equal(data.errors[0].error.type, 'tokenError');
});
