// The fields the dashboard reads from each API object, with their JSON types.
// `types.ts` is checked against this at compile time (every field here exists in the TS type),
// and tests/browser.mjs checks real gateway answers against it, so a renamed or retyped field
// in a service breaks a test instead of showing an empty column.
// A trailing `?` marks a field that may be absent or null.

export const SCHEMAS = {
  profile: { id: 'string', name: 'string', project: 'object', projects: 'array', roles: 'array', is_system_admin: 'boolean', csrf_token: 'string?' },
  server: { id: 'string', name: 'string', status: 'string', vcpu_count: 'number?', vmem_size: 'number?', ips: 'string?', host: 'string?', host_id: 'string?', created_at: 'string' },
  network: { id: 'string', name: 'string', status: 'string', wire: 'string?', wire_id: 'string', guest_ip_start: 'string', guest_ip_end: 'string', guest_ip_mask: 'number', guest_gateway: 'string?', ports: 'number?', ports_used: 'number?', tenant: 'string?', is_public: 'boolean?' },
  wire: { id: 'string', name: 'string', status: 'string', bandwidth: 'number?', mtu: 'number?', zone_id: 'string?', zone: 'string?' },
  host: { id: 'string', name: 'string', status: 'string', host_status: 'string?', access_ip: 'string?', cpu_count: 'number?', mem_size: 'number?', mem_reserved: 'number?', storage_size: 'number?', enabled: 'boolean?', cpu_commit: 'number?', mem_commit: 'number?', guests: 'number?' },
  storage: { id: 'string', name: 'string', status: 'string', storage_type: 'string?', capacity: 'number?', actual_capacity_used: 'number?', used_capacity: 'number?', reserved: 'number?', enabled: 'boolean?' },
  image: { id: 'string', name: 'string', status: 'string', size: 'number?', disk_format: 'string?', min_disk: 'number?', protected: 'boolean?', is_public: 'boolean?', created_at: 'string' },
  keypair: { id: 'string', name: 'string', scheme: 'string?', fingerprint: 'string?', public_key: 'string?', created_at: 'string' },
  secgroup: { id: 'string', name: 'string', status: 'string?', rules: 'string?', tenant: 'string?' },
  user: { id: 'string', name: 'string', enabled: 'boolean?', domain_id: 'string?', displayname: 'string?', created_at: 'string?' },
  project: { id: 'string', name: 'string', domain_id: 'string?', enabled: 'boolean?', description: 'string?' },
  role: { id: 'string', name: 'string' },
  action: { id: 'string|number', obj_type: 'string', obj_name: 'string?', action: 'string', success: 'boolean', user: 'string?', tenant: 'string?', service: 'string?', ops_time: 'string?', notes: 'string?' },
  event: { id: 'string|number', obj_type: 'string?', obj_id: 'string?', action: 'string?', user: 'string?', ops_time: 'string?', notes: 'string?' },
  task: { id: 'string', obj_id: 'string?', obj_type: 'string?', stage: 'string?', status: 'string?', created_at: 'string?' },
}

function typeOf(v) {
  if (v === null || v === undefined) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

/** Problems with `obj` against schema `kind` (an empty list when it fits). */
export function checkObject(kind, obj) {
  const schema = SCHEMAS[kind]
  if (!schema) return [`no schema ${kind}`]
  const problems = []
  for (const [field, spec] of Object.entries(schema)) {
    const optional = spec.endsWith('?')
    const types = spec.replace('?', '').split('|')
    const t = typeOf(obj?.[field])
    if (t === 'null' && optional) continue
    if (!types.includes(t)) problems.push(`${kind}.${field}: expected ${spec}, got ${t}`)
  }
  return problems
}

/** Problems with a gateway list answer `{data, total, limit, offset}` of `kind` objects. */
export function checkList(kind, body) {
  const problems = []
  if (!Array.isArray(body?.data)) return [`${kind} list: no data array`]
  for (const k of ['total', 'limit', 'offset']) if (typeof body[k] !== 'number') problems.push(`${kind} list: ${k} is not a number`)
  for (const o of body.data) problems.push(...checkObject(kind, o))
  return problems
}
