// orgs.js — the simulated Hugging Face organisations a person may share (scope read-memberships), and how
// Hugging Face describes them: in its userinfo (what Logto keeps as rawData.orgs) and in the Hub's whoami-v2.

import * as crypto from 'node:crypto';

export const HF_ORGS = [
  { name: 'acme', fullname: 'Acme Inc', isEnterprise: true, canPay: true },
  { name: 'beta-lab', fullname: 'Beta Lab', isEnterprise: false, canPay: false },
  { name: 'open-research', fullname: 'Open Research', isEnterprise: false, canPay: false },
];
export const HF_ROLES = ['read', 'contributor', 'write', 'admin'];
export const READ_MEMBERSHIPS = 'read-memberships';

const orgId = (name) => crypto.createHash('sha256').update(`org:${name}`).digest('hex').slice(0, 24);
const preset = (name) => HF_ORGS.find((org) => org.name === name);

/** The organisations a submitted consent form shares: [{name, role}], presets only, role `read` unless told. */
export function sharedOrgs(form) {
  const ticked = new Set(form.getAll('org'));
  return HF_ORGS.filter(({ name }) => ticked.has(name)).map(({ name }) => {
    const role = form.get(`role_${name}`);
    return { name, role: HF_ROLES.includes(role) ? role : 'read' };
  });
}

/** As in Hugging Face's userinfo `orgs` (Logto keeps them under rawData). */
export function userinfoOrg({ name, role }) {
  const org = preset(name);
  return {
    sub: orgId(name), name: org.fullname, preferred_username: name, picture: null,
    isEnterprise: org.isEnterprise, canPay: org.canPay, roleInOrg: role,
  };
}

/** As in the Hub's whoami-v2 `orgs`. */
export function whoamiOrg({ name, role }) {
  const org = preset(name);
  return {
    type: 'org', id: orgId(name), name, fullname: org.fullname, email: null, canPay: org.canPay,
    avatarUrl: null, periodEnd: null, isEnterprise: org.isEnterprise, roleInOrg: role,
  };
}
