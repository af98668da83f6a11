// Shared by the browser tests: launch Debian's chromium through playwright-core (never a
// downloaded browser), count checks, keep screenshots, talk to the gateway's API directly.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

export const GATEWAY = process.env.GATEWAY_URL ?? 'http://127.0.0.1:30300'
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD ?? ''
export const ARTIFACTS = process.env.ARTIFACTS ?? '/tmp/cloudpods-browser-artifacts'
export const TIMEOUT = Number(process.env.BROWSER_STEP_TIMEOUT_MS ?? 20000)
mkdirSync(ARTIFACTS, { recursive: true })

let passed = 0
let failed = 0
const started = Date.now()

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
  const context = await browser.newContext({ baseURL: GATEWAY, viewport: { width: 1400, height: 900 } })
  context.setDefaultTimeout(TIMEOUT)
  const page = await context.newPage()
  page.on('pageerror', (e) => console.log(`    [page error] ${e.message}`))
  return { browser, context, page }
}

/** Runs one named check; a failure is counted and saved as a screenshot, then rethrown. */
export async function check(page, name, fn) {
  const t0 = Date.now()
  try {
    await fn()
    passed++
    console.log(`ok   ${name} (${Date.now() - t0} ms)`)
  } catch (e) {
    failed++
    console.log(`FAIL ${name}: ${e?.stack ?? e}`)
    if (page) await page.screenshot({ path: join(ARTIFACTS, `failed-${slug(name)}.png`), fullPage: true }).catch(() => {})
    throw e
  }
}

export async function shot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 60)
}

export function summary(label = 'browser') {
  console.log(`\nscreenshots: ${ARTIFACTS}`)
  console.log(`${label}: ${passed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  return failed === 0 ? 0 : 1
}

/** Signs in through the login form (not waiting for where it lands). */
export async function login(page, user, password) {
  await page.goto('/login')
  await page.fill('[data-testid=login-form] input[name=username]', user)
  await page.fill('[data-testid=login-form] input[name=password]', password)
  await page.click('[data-testid=login-form] button[type=submit]')
}

/** As sysadmin, opens the server create form and fills name, vCPUs, memory and image; the
 * form's selector. */
export async function startServerForm(page, { name, vcpus, memMb, imageId }) {
  await login(page, 'sysadmin', ADMIN_PASSWORD)
  await page.waitForURL('**/servers')
  await page.click('[data-testid=create]')
  const f = '[data-testid=server-create-form]'
  await page.fill(`${f} input[name=name]`, name)
  await page.fill(`${f} input[name=vcpu_count]`, String(vcpus))
  await page.fill(`${f} input[name=vmem_size]`, String(memMb))
  await page.waitForSelector(`${f} select[name=image] option[value="${imageId}"]`, { state: 'attached' })
  await page.selectOption(`${f} select[name=image]`, imageId)
  return f
}

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`)
}

/** A cookie-keeping API client of the gateway (for setup and for checking answers' shapes). */
export class ApiClient {
  constructor() {
    this.cookies = {}
  }

  async call(method, path, body) {
    const headers = { Accept: 'application/json' }
    const cookie = Object.entries(this.cookies).map(([k, v]) => `${k}=${v}`).join('; ')
    if (cookie) headers.Cookie = cookie
    if (method !== 'GET' && this.cookies.cloudpods_csrf) headers['X-CSRF-Token'] = this.cookies.cloudpods_csrf
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const resp = await fetch(`${GATEWAY}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    for (const sc of resp.headers.getSetCookie?.() ?? []) {
      const [kv] = sc.split(';')
      const i = kv.indexOf('=')
      this.cookies[kv.slice(0, i)] = kv.slice(i + 1)
    }
    const text = await resp.text()
    let json = null
    try {
      json = text ? JSON.parse(text) : null
    } catch {
      json = text
    }
    return { status: resp.status, body: json }
  }

  async ok(method, path, body) {
    const r = await this.call(method, path, body)
    if (r.status >= 400) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }

  login(username, password, project) {
    return this.ok('POST', '/api/v1/auth/login', { username, password, project })
  }
}
