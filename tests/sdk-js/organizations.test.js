// Every OrganizationsApi call of the design doc (vendors/openlattice.md §2) that lattice 0.98.0
// has, run through the official SDK against the orgops OpenLattice simulator, in the order a
// tenant org's life takes them. The tests share one organization and run in file order.
'use strict';

const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const test = require('node:test');

const { as, failure, adminToken, userToken, Models, Types } = require('./lattice');

const { GrantBuilder, OrganizationBuilder, PrincipalBuilder, RoleBuilder } = Models;
const { GrantTypes, PrincipalTypes } = Types;

const ROLE_CLASS = 'com.openlattice.organization.roles.Role';
// Seeded users (src/simulator/openlattice/seed.rs); Alice's subject holds a `|`.
const ALICE = 'google-oauth2|104729384756102938475';
const ADMIN = 'auth0|orgops-admin';

const run = randomUUID().slice(0, 8);
const orgName = `sdk-org-${run}`;
const orgId = randomUUID();
const roleId = randomUUID();
let templateId;

function principal(id, type) {
  return new PrincipalBuilder().setId(id).setType(type).build();
}

function organization(id, name, title) {
  return new OrganizationBuilder()
    .setId(id)
    .setTitle(title)
    .setDescription('made by the SDK test')
    .setPrincipal(principal(name, PrincipalTypes.ORGANIZATION))
    .setEmailDomains(['sdk.orgops.example'])
    .build();
}

test('getAllOrganizations lists the template org with its roles and members', async () => {
  const orgs = await as(adminToken).getAllOrganizations();
  assert.ok(Array.isArray(orgs));
  const template = orgs.find((o) => o.title === 'Template org');
  assert.ok(template, `no template org among ${orgs.map((o) => o.title)}`);
  templateId = template.id;
  assert.equal(template.principal.type, 'ORGANIZATION');
  assert.ok(template.roles.length >= 4, 'admin role and three template roles');
  assert.ok(template.members.some((m) => m.type === 'USER' && m.id === ADMIN));
});

test('getOrganization serves the full Organization shape', async () => {
  const org = await as(adminToken).getOrganization(templateId);
  assert.equal(org.id, templateId);
  assert.equal(org.principal.id, 'orgops-template');
  assert.equal(org.title, 'Template org');
  assert.ok(org.description.length > 0);
  assert.deepEqual([...org.emailDomains].sort(), ['orgops.example', 'tenants.orgops.example']);
  assert.equal(org.adminRoleAclKey[0], templateId);
  const titles = org.roles.map((r) => r.title).sort();
  assert.deepEqual(titles, ['Analyst', 'Data steward', 'Reviewer', 'orgops-template - ADMIN']);
  for (const role of org.roles) {
    assert.equal(role['@class'], ROLE_CLASS);
    assert.equal(role.organizationId, templateId);
    assert.deepEqual(role.aclKey, [templateId, role.id]);
    assert.equal(role.principal.type, 'ROLE');
  }
  const analyst = org.roles.find((r) => r.title === 'Analyst');
  const reviewer = org.roles.find((r) => r.title === 'Reviewer');
  assert.equal(org.grants[analyst.id].Manual.grantType, 'Manual');
  assert.deepEqual(org.grants[reviewer.id].EmailDomain.mappings, ['@orgops.example']);
  assert.equal(org.securablePrincipal['@class'], 'com.openlattice.organization.OrganizationPrincipal');
  assert.ok(Array.isArray(org.apps) && Array.isArray(org.connections));
});

test('createOrganization keeps the id set with setId and creates the admin role', async () => {
  const api = as(adminToken);
  const id = await api.createOrganization(organization(orgId, orgName, 'SDK org'));
  assert.equal(id, orgId);
  const org = await api.getOrganization(orgId);
  assert.equal(org.title, 'SDK org');
  assert.equal(org.description, 'made by the SDK test');
  assert.deepEqual(org.emailDomains, ['sdk.orgops.example']);
  assert.deepEqual(org.members, [{ type: 'USER', id: ADMIN }]);
  assert.equal(org.roles.length, 1);
  const admin = org.roles[0];
  assert.equal(admin.title, `${orgName} - ADMIN`);
  assert.equal(admin.principal.id, `${orgId}|${orgName} - ADMIN`);
  assert.equal(admin.description, 'Administrators of this organization');
  assert.deepEqual(org.adminRoleAclKey, [orgId, admin.id]);
});

test('createOrganization with a principal id in use is a 400', async () => {
  const { status, data } = await failure(
    as(adminToken).createOrganization(organization(randomUUID(), orgName, 'Second')),
  );
  assert.equal(status, 400);
  assert.equal(data.errors[0].error.type, 'illegalArgument');
  assert.match(data.errors[0].message, /already exists/);
});

test('updateOrganizationTitle and updateOrganizationDescription send text and answer nothing', async () => {
  const api = as(adminToken);
  assert.equal(await api.updateOrganizationTitle(orgId, 'SDK org, renamed'), '');
  assert.equal(await api.updateOrganizationDescription(orgId, 'described "as text"'), '');
  const org = await api.getOrganization(orgId);
  assert.equal(org.title, 'SDK org, renamed');
  assert.equal(org.description, 'described "as text"');
  assert.equal(org.principal.id, orgName, 'the principal id never changes');
});

test('addDomainsToOrganization and removeDomainsFromOrganization are set operations', async () => {
  const api = as(adminToken);
  await api.addDomainsToOrganization(orgId, ['a.orgops.example', 'sdk.orgops.example']);
  let org = await api.getOrganization(orgId);
  assert.deepEqual([...org.emailDomains].sort(), ['a.orgops.example', 'sdk.orgops.example']);
  await api.removeDomainsFromOrganization(orgId, ['sdk.orgops.example', 'never.example']);
  org = await api.getOrganization(orgId);
  assert.deepEqual(org.emailDomains, ['a.orgops.example']);
});

test('e-mail domains can only be changed by global admins', async () => {
  const { status, data } = await failure(as(userToken).addDomainsToOrganization(templateId, ['x.example']));
  assert.equal(status, 401);
  assert.equal(data.errors[0].error.type, 'forbidden');
  const org = await as(adminToken).getOrganization(templateId);
  assert.ok(!org.emailDomains.includes('x.example'));
});

test('getOrganizationMembers shows the creator with profile and roles', async () => {
  const members = await as(adminToken).getOrganizationMembers(orgId);
  assert.equal(members.length, 1);
  const [creator] = members;
  assert.equal(creator.principal.principal.id, ADMIN);
  assert.equal(creator.profile.user_id, ADMIN);
  assert.equal(creator.profile.email, 'admin@orgops.example');
  const inThisOrg = creator.roles.filter((r) => r.principal.type === 'ROLE' && r.aclKey[0] === orgId);
  assert.deepEqual(inThisOrg.map((r) => r.title), [`${orgName} - ADMIN`]);
  assert.ok(creator.roles.some((r) => r.principal.type === 'ORGANIZATION' && r.id === orgId));
});

test('addMemberToOrganization adds a user whose id holds a |, once', async () => {
  const api = as(adminToken);
  assert.equal(await api.addMemberToOrganization(orgId, ALICE), '');
  assert.equal(await api.addMemberToOrganization(orgId, ALICE), '');
  const members = await api.getOrganizationMembers(orgId);
  assert.deepEqual(members.map((m) => m.profile.user_id).sort(), [ADMIN, ALICE].sort());
});

test('createRole creates a role with the id it was given', async () => {
  const api = as(adminToken);
  const role = new RoleBuilder()
    .setId(roleId)
    .setOrganizationId(orgId)
    .setTitle('Analyst')
    .setDescription('Reads data')
    .setPrincipal(principal(`${orgId}|Analyst`, PrincipalTypes.ROLE))
    .build();
  assert.equal(await api.createRole(role), roleId);
  const roles = await api.getOrganizationRoles(orgId);
  assert.deepEqual(roles.map((r) => r.title).sort(), ['Analyst', `${orgName} - ADMIN`].sort());
  const got = await api.getRole(orgId, roleId);
  assert.equal(got['@class'], ROLE_CLASS);
  assert.equal(got.id, roleId);
  assert.equal(got.organizationId, orgId);
  assert.deepEqual(got.aclKey, [orgId, roleId]);
  assert.equal(got.description, 'Reads data');
});

test('createRole with a role name in use creates nothing', async () => {
  const api = as(adminToken);
  const again = new RoleBuilder()
    .setOrganizationId(orgId)
    .setTitle('Analyst again')
    .setPrincipal(principal(`${orgId}|Analyst`, PrincipalTypes.ROLE))
    .build();
  const answered = await api.createRole(again);
  assert.notEqual(answered, roleId, 'the server answers the request id, not the existing one');
  const roles = await api.getOrganizationRoles(orgId);
  assert.equal(roles.length, 2);
  assert.ok(!roles.some((r) => r.id === answered));
});

test('updateRoleTitle and updateRoleDescription change the role, not its principal', async () => {
  const api = as(adminToken);
  assert.equal(await api.updateRoleTitle(orgId, roleId, 'Senior analyst'), '');
  assert.equal(await api.updateRoleDescription(orgId, roleId, 'Reads more data'), '');
  const role = await api.getRole(orgId, roleId);
  assert.equal(role.title, 'Senior analyst');
  assert.equal(role.description, 'Reads more data');
  assert.equal(role.principal.id, `${orgId}|Analyst`);
});

test('updateRoleGrant stores grants by type on the organization', async () => {
  const api = as(adminToken);
  const manual = new GrantBuilder().setGrantType(GrantTypes.MANUAL).setMappings([]).build();
  const domain = new GrantBuilder()
    .setGrantType(GrantTypes.EMAIL_DOMAIN)
    .setMappings(['@orgops.example'])
    .build();
  await api.updateRoleGrant(orgId, roleId, manual);
  await api.updateRoleGrant(orgId, roleId, domain);
  const org = await api.getOrganization(orgId);
  assert.deepEqual(Object.keys(org.grants[roleId]).sort(), ['EmailDomain', 'Manual']);
  assert.deepEqual(org.grants[roleId].EmailDomain, {
    grantType: 'EmailDomain',
    attribute: '',
    mappings: ['@orgops.example'],
  });
});

test('addRoleToMember, getUsersWithRole, removeRoleFromMember', async () => {
  const api = as(adminToken);
  assert.equal(await api.addRoleToMember(orgId, roleId, ALICE), '');
  assert.equal(await api.addRoleToMember(orgId, roleId, ALICE), '');
  const users = await api.getUsersWithRole(orgId, roleId);
  assert.deepEqual(users.map((u) => u.user_id), [ALICE]);
  assert.equal(users[0].email, 'alice@orgops.example');
  const members = await api.getOrganizationMembers(orgId);
  const alice = members.find((m) => m.profile.user_id === ALICE);
  assert.ok(alice.roles.some((r) => r.id === roleId));
  assert.equal(await api.removeRoleFromMember(orgId, roleId, ALICE), '');
  assert.deepEqual(await api.getUsersWithRole(orgId, roleId), []);
});

test('removeMemberFromOrganization removes the member', async () => {
  const api = as(adminToken);
  await api.addRoleToMember(orgId, roleId, ALICE);
  assert.equal(await api.removeMemberFromOrganization(orgId, ALICE), '');
  const members = await api.getOrganizationMembers(orgId);
  assert.deepEqual(members.map((m) => m.profile.user_id), [ADMIN]);
  assert.deepEqual(await api.getUsersWithRole(orgId, roleId), [], 'their roles in the org go too');
});

test('deleteRole deletes a role but never the admin role', async () => {
  const api = as(adminToken);
  const org = await api.getOrganization(orgId);
  const { status, data } = await failure(api.deleteRole(orgId, org.adminRoleAclKey[1]));
  assert.equal(status, 400);
  assert.match(data.errors[0].message, /admin role/);
  assert.equal(await api.deleteRole(orgId, roleId), '');
  const roles = await api.getOrganizationRoles(orgId);
  assert.deepEqual(roles.map((r) => r.id), [org.adminRoleAclKey[1]]);
});

test('an unknown organization is a 500 naming it', async () => {
  const unknown = randomUUID();
  const { status, data } = await failure(as(adminToken).getOrganization(unknown));
  assert.equal(status, 500);
  assert.equal(data.errors[0].error.type, 'illegalState');
  assert.equal(data.errors[0].message, `Organization [${unknown}] does not exist.`);
});

test('a member who does not own the organization cannot rename it', async () => {
  const { status, data } = await failure(as(userToken).updateOrganizationTitle(templateId, 'Mine'));
  assert.equal(status, 401);
  assert.equal(data.errors[0].error.type, 'forbidden');
  const org = await as(adminToken).getOrganization(templateId);
  assert.equal(org.title, 'Template org');
});

test('deleteOrganization deletes it', async () => {
  const api = as(adminToken);
  assert.equal(await api.deleteOrganization(orgId), '');
  const { status } = await failure(api.getOrganization(orgId));
  assert.equal(status, 500);
  const orgs = await api.getAllOrganizations();
  assert.ok(!orgs.some((o) => o.id === orgId));
});
