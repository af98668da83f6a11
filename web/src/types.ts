// API types of the objects the dashboard shows, as the gateway returns them.
// Checked against schema.mjs at compile time (below) and against real answers in tests.
import { SCHEMAS } from './schema.mjs'

export interface ListResult<T> {
  data: T[]
  total: number
  limit: number
  offset: number
}

export interface ApiErrorBody {
  code: number
  class: string
  details: string
}

export interface ProjectBrief {
  id: string
  name: string
  domain_id?: string
}

export interface Profile {
  id: string
  name: string
  domain: { id: string; name: string }
  project: ProjectBrief
  projects: ProjectBrief[]
  roles: string[]
  is_system_admin: boolean
  is_domain_admin?: boolean
  csrf_token?: string
  expires_at?: string
}

interface Base {
  id: string
  name: string
  created_at: string
  updated_at?: string
  description?: string
  tenant?: string
  tenant_id?: string
}

export type ServerStatus = 'init' | 'scheduling' | 'creating' | 'starting' | 'running' | 'stopping' | 'ready' | 'deleting' | string

export interface Server extends Base {
  status: ServerStatus
  vcpu_count?: number
  vmem_size?: number
  ips?: string
  host?: string
  host_id?: string
  hypervisor?: string
  os_type?: string
}

export interface Network extends Base {
  status: string
  wire?: string
  wire_id: string
  guest_ip_start: string
  guest_ip_end: string
  guest_ip_mask: number
  guest_gateway?: string
  ports?: number
  ports_used?: number
  is_public?: boolean
}

export interface Wire extends Base {
  status: string
  bandwidth?: number
  mtu?: number
  zone_id?: string
  zone?: string
}

export interface Host extends Base {
  status: string
  host_status?: string
  access_ip?: string
  cpu_count?: number
  mem_size?: number
  mem_reserved?: number
  storage_size?: number
  enabled?: boolean
  /** What the host's servers take (region extra details). */
  cpu_commit?: number
  mem_commit?: number
  guests?: number
}

export interface Storage extends Base {
  status: string
  storage_type?: string
  capacity?: number
  actual_capacity_used?: number
  /** What the disks on it were given (region extra details). */
  used_capacity?: number
  reserved?: number
  enabled?: boolean
}

export interface Image extends Base {
  status: string
  size?: number
  disk_format?: string
  min_disk?: number
  protected?: boolean
  is_public?: boolean
}

export interface Keypair extends Base {
  scheme?: string
  fingerprint?: string
  public_key?: string
  private_key?: string
}

export interface Secgroup extends Base {
  status?: string
  rules?: string
}

export interface User extends Base {
  enabled?: boolean
  domain_id?: string
  displayname?: string
}

export interface Project extends Base {
  domain_id?: string
  enabled?: boolean
}

export interface Role {
  id: string
  name: string
}

export interface Action {
  id: string | number
  obj_type: string
  obj_name?: string
  action: string
  success: boolean
  user?: string
  tenant?: string
  service?: string
  ops_time?: string
  notes?: string
}

export interface OpsEvent {
  id: string | number
  obj_type?: string
  obj_id?: string
  action?: string
  user?: string
  ops_time?: string
  notes?: string
}

export interface Task {
  id: string
  obj_id?: string
  obj_type?: string
  stage?: string
  status?: string
  created_at?: string
}

export interface RoleAssignment {
  role: { id: string; name?: string }
  user?: { id: string; name?: string }
  group?: { id: string; name?: string }
  scope: { project?: { id: string; name?: string }; domain?: { id: string; name?: string }; system?: unknown }
}

// Compile-time tie to schema.mjs: every field the schema names exists in the TS type.
type Fields<K extends keyof typeof SCHEMAS> = keyof (typeof SCHEMAS)[K]
type Covers<T, K extends keyof typeof SCHEMAS> = Fields<K> extends keyof T ? true : never
export const schemaCoverage: [
  Covers<Profile, 'profile'>,
  Covers<Server, 'server'>,
  Covers<Network, 'network'>,
  Covers<Wire, 'wire'>,
  Covers<Host, 'host'>,
  Covers<Storage, 'storage'>,
  Covers<Image, 'image'>,
  Covers<Keypair, 'keypair'>,
  Covers<Secgroup, 'secgroup'>,
  Covers<User, 'user'>,
  Covers<Project, 'project'>,
  Covers<Role, 'role'>,
  Covers<Action, 'action'>,
  Covers<OpsEvent, 'event'>,
  Covers<Task, 'task'>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true]
