// The gateway client: cookie session, CSRF header on writes, Cloudpods errors as ApiError.
import type { ApiErrorBody, ListResult, Profile } from './types'

export class ApiError extends Error {
  constructor(
    public status: number,
    public klass: string,
    public details: string,
  ) {
    super(details)
  }
}

export function csrfToken(): string {
  const m = document.cookie.match(/(?:^|;\s*)cloudpods_csrf=([^;]+)/)
  return m ? decodeURIComponent(m[1]) : ''
}

/** Called on any 401 (session gone): the app goes back to the login page. */
export let onUnauthorized: () => void = () => {}
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f
}

async function toError(resp: Response): Promise<ApiError> {
  let body: Partial<ApiErrorBody> = {}
  try {
    body = await resp.json()
  } catch {
    // not JSON: a proxy or a crash; fall through
  }
  return new ApiError(resp.status, body.class ?? 'HttpError', body.details ?? `${resp.status} ${resp.statusText}`)
}

export async function request<T>(method: string, path: string, body?: unknown, query?: Record<string, unknown>): Promise<T> {
  const url = new URL(path, window.location.origin)
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null || v === '') continue
    if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, String(x)))
    else url.searchParams.set(k, String(v))
  }
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken()
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  let resp: Response
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' })
  } catch (e) {
    throw new ApiError(0, 'NetworkError', `the gateway cannot be reached: ${(e as Error).message}`)
  }
  if (!resp.ok) {
    const err = await toError(resp)
    if (resp.status === 401 && !path.endsWith('/auth/login')) onUnauthorized()
    throw err
  }
  const text = await resp.text()
  return (text ? JSON.parse(text) : {}) as T
}

export interface ListParams {
  limit?: number
  offset?: number
  order_by?: string
  order?: 'asc' | 'desc'
  search?: string
  filter?: string[]
  [k: string]: unknown
}

const v2 = (path: string) => `/api/v2/${path}`

export const api = {
  login: (username: string, password: string, project?: string) =>
    request<Profile>('POST', '/api/v1/auth/login', { username, password, project: project || undefined }),
  logout: () => request<object>('POST', '/api/v1/auth/logout'),
  user: () => request<Profile>('GET', '/api/v1/auth/user'),
  switchProject: (project: string) => request<Profile>('POST', '/api/v1/auth/switch', { project }),

  list: <T>(resource: string, params: ListParams = {}) => request<ListResult<T>>('GET', v2(resource), undefined, params),
  get: <T>(resource: string, id: string) => request<T>('GET', v2(`${resource}/${encodeURIComponent(id)}`)),
  spec: <T>(resource: string, id: string, spec: string, params: ListParams = {}) =>
    request<T>('GET', v2(`${resource}/${encodeURIComponent(id)}/${spec}`), undefined, params),
  create: <T>(resource: string, keyword: string, data: Record<string, unknown>) =>
    request<T>('POST', v2(resource), { [keyword]: data }),
  update: <T>(resource: string, keyword: string, id: string, data: Record<string, unknown>) =>
    request<T>('PUT', v2(`${resource}/${encodeURIComponent(id)}`), { [keyword]: data }),
  remove: <T>(resource: string, id: string) => request<T>('DELETE', v2(`${resource}/${encodeURIComponent(id)}`)),
  perform: <T>(resource: string, id: string, action: string, data: Record<string, unknown> = {}) =>
    request<T>('POST', v2(`${resource}/${encodeURIComponent(id)}/${action}`), data),
  /** `POST /api/v2/<resource>/<action>?id=a&id=b`: one answer per id. */
  batch: (resource: string, action: string, ids: string[], data: Record<string, unknown> = {}) =>
    request<{ id: string; status: number; data: unknown }[]>('POST', v2(`${resource}/${action}`), data, { id: ids }),
  /** `DELETE /api/v2/<resource>?id=a&id=b`: one answer per id. */
  batchDelete: (resource: string, ids: string[]) =>
    request<{ id: string; status: number; data: unknown }[]>('DELETE', v2(resource), undefined, { id: ids }),
  put: <T>(path: string) => request<T>('PUT', v2(path)),
  del: <T>(path: string) => request<T>('DELETE', v2(path)),

  /** Streams a file to glance through the gateway, reporting progress (0..1). */
  uploadImage(file: File, meta: Record<string, string>, onProgress: (f: number) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest()
      xhr.open('POST', v2('images'))
      xhr.setRequestHeader('Content-Type', 'application/octet-stream')
      xhr.setRequestHeader('X-CSRF-Token', csrfToken())
      for (const [k, v] of Object.entries(meta)) if (v) xhr.setRequestHeader(`X-Image-Meta-${k}`, v)
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total)
      xhr.onload = () => {
        let body: Partial<ApiErrorBody> = {}
        try {
          body = JSON.parse(xhr.responseText)
        } catch {
          // keep empty
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body)
        else reject(new ApiError(xhr.status, body.class ?? 'HttpError', body.details ?? `upload failed: ${xhr.status}`))
      }
      xhr.onerror = () => reject(new ApiError(0, 'NetworkError', 'the upload was interrupted'))
      xhr.send(file)
    })
  },
}
