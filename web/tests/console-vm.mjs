// The console of a REAL QEMU virtual machine in the dashboard: the test guest image uploaded
// through the gateway, a server created through the form on network `default`, running on the
// real host agent, its console opened from the detail page (noVNC -> apigateway -> webconsole
// websocket -> the agent's VNC forwarder -> QEMU's VNC), the canvas checked for the VM's own
// screen (text; it changes when the guest prints its ready line, which the test image writes to
// VGA as well as to the serial log the test reads) and saved as server-console-vm.png; then the
// server deleted until the API says 404.
// Needs root and the real-host mode of run.sh (netns, QEMU, TEST_IMAGE, AIO_DATA_DIR):
//   BROWSER_HOST=1 web/tests/run.sh console-vm.mjs
// Part of the `browser` phase of scripts/test.sh.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_PASSWORD, ApiClient, GATEWAY, assert, check, launch, shot, startServerForm, summary } from './lib.mjs'

const NAME = 'console-vm'
const TEST_IMAGE = process.env.TEST_IMAGE ?? ''
const AIO_DATA_DIR = process.env.AIO_DATA_DIR ?? ''
const { browser, page } = await launch()
const row = (name) => page.locator(`tr[data-name="${name}"]`)

async function waitStatus(name, want, timeout = 120000) {
  await page.waitForFunction(
    ([n, w]) => document.querySelector(`tr[data-name="${n}"] [data-testid=status]`)?.textContent === w,
    [name, want],
    { timeout },
  )
}

/** The guest's ready line in its serial log (the agent keeps it under aio's data dir), or ''. */
function readyLine() {
  const log = join(AIO_DATA_DIR, 'host', 'servers', serverId, 'serial.log')
  if (!existsSync(log)) return ''
  return readFileSync(log, 'latin1').split('\n').find((l) => l.includes('CLOUDPODS-READY'))?.trim() ?? ''
}

/** What the noVNC canvas shows: size, distinct colours, pixels other than the commonest colour,
 * and a checksum of the picture. */
function canvasStats() {
  const c = document.querySelector('.console-screen canvas')
  if (!c || c.width === 0 || c.height === 0) return null
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
  const hist = new Map()
  let sum = 0
  for (let i = 0; i < d.length; i += 4) {
    const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]
    hist.set(k, (hist.get(k) ?? 0) + 1)
    sum = (sum * 31 + k) >>> 0
  }
  const total = d.length / 4
  const background = Math.max(...hist.values())
  return { size: `${c.width}x${c.height}`, colours: hist.size, foreground: total - background, sum }
}

let code = 1
const api = new ApiClient()
let serverId = ''
try {
  let imageId = ''
  let networkId = ''
  await check(null, 'setup: the test guest image uploaded through the gateway, active', async () => {
    assert(TEST_IMAGE && AIO_DATA_DIR, 'TEST_IMAGE and AIO_DATA_DIR are set (run: BROWSER_HOST=1 web/tests/run.sh console-vm.mjs)')
    await api.login('sysadmin', ADMIN_PASSWORD)
    const resp = await fetch(`${GATEWAY}/api/v2/images`, {
      method: 'POST',
      headers: {
        Cookie: Object.entries(api.cookies).map(([k, v]) => `${k}=${v}`).join('; '),
        'X-CSRF-Token': api.cookies.cloudpods_csrf,
        'Content-Type': 'application/octet-stream',
        'X-Image-Meta-Name': 'cloudpods-testimg',
        'X-Image-Meta-Disk_format': 'qcow2',
      },
      body: readFileSync(TEST_IMAGE),
    })
    const img = await resp.json()
    assert(resp.status === 200, JSON.stringify(img))
    imageId = img.id
    let status = ''
    for (let i = 0; i < 300 && status !== 'active'; i++) {
      status = (await api.ok('GET', `/api/v2/images/${imageId}`)).status
      if (status !== 'active') await new Promise((r) => setTimeout(r, 200))
    }
    assert(status === 'active', `image status ${status}`)
    networkId = (await api.ok('GET', '/api/v2/networks/default')).id
    const hosts = await api.ok('GET', '/api/v2/hosts')
    assert(hosts.data.length >= 1, `a registered host agent: ${JSON.stringify(hosts)}`)
  })

  await check(page, 'log in and create a server through the form', async () => {
    const f = await startServerForm(page, { name: NAME, vcpus: 1, memMb: 256, imageId })
    await page.fill(`${f} input[name=disk_size]`, '1')
    await page.waitForSelector(`${f} select[name=network] option[value="${networkId}"]`, { state: 'attached' })
    await page.selectOption(`${f} select[name=network]`, networkId)
    await page.fill(`${f} input[name=password]`, 'Console-Vm-Pw-1234')
    await page.click(`${f} button[type=submit]`)
    await page.waitForURL('**/servers')
    await row(NAME).waitFor()
  })

  await check(page, 'the server runs on the real host agent', async () => {
    await waitStatus(NAME, 'running')
    const s = await api.ok('GET', `/api/v2/servers/${NAME}`)
    serverId = s.id
    assert(s.host_id, `placed on a host: ${JSON.stringify(s)}`)
    const host = await api.ok('GET', `/api/v2/hosts/${s.host_id}`)
    assert(!/^sim/i.test(host.name ?? ''), `not a simulated host: ${host.name}`)
    console.log(`    ${NAME} (${serverId}) running on host ${host.name}, ips ${s.ips ?? ''}`)
  })

  await check(page, "the console shows the VM's real screen through noVNC", async () => {
    await page.click(`tr[data-name="${NAME}"] a`)
    await page.waitForSelector('[data-testid=server-detail]')
    await page.click('[data-testid=console]')
    await page.waitForURL('**/servers/*/console')
    await page.waitForFunction(() => document.querySelector('[data-testid=console-state]')?.textContent === 'connected', null, {
      timeout: 60000,
    })
    // TCG is slow: SeaBIOS, syslinux and the kernel take turns on the screen. Wait (up to 90 s)
    // for a screen with text on it: two colours at least and a good number of text pixels.
    const t0 = Date.now()
    const got = await page.waitForFunction(
      (fn) => {
        const s = new Function(`return (${fn})()`)()
        return s && s.colours >= 2 && s.foreground >= 500 ? s : null
      },
      canvasStats.toString(),
      { timeout: 90000, polling: 500 },
    )
    const first = await got.jsonValue()
    const bootedBefore = readyLine() !== ''
    console.log(`    first screen with text after ${Date.now() - t0} ms: ${JSON.stringify(first)}`)
    // The guest writes its ready line to the VGA screen (tty0) just before its serial line: wait
    // for the serial one, then for the screen to show the guest's writes (a changed picture),
    // unless the guest was already up when the first picture was taken.
    let line = ''
    for (let i = 0; i < 180 && !(line = readyLine()); i++) await page.waitForTimeout(500)
    assert(line, `the guest's ready line in its serial log within 90 s (${AIO_DATA_DIR})`)
    console.log(`    ${line} (after ${Date.now() - t0} ms)`)
    const stat = () => page.evaluate((fn) => new Function(`return (${fn})()`)(), canvasStats.toString())
    let stats = await stat()
    for (let i = 0; i < 20 && !bootedBefore && stats.sum === first.sum; i++) {
      await page.waitForTimeout(500)
      stats = await stat()
    }
    await page.waitForTimeout(1000)
    stats = await stat()
    assert(bootedBefore || stats.sum !== first.sum, `the screen changed when the guest came up: ${JSON.stringify(stats)}`)
    assert(stats.colours >= 2 && stats.foreground >= 500, `the screen still has text: ${JSON.stringify(stats)}`)
    assert((await page.locator('[data-testid=console-problem]').count()) === 0, 'no console problem')
    await shot(page, 'server-console-vm')
    console.log(`    console: ${stats.size}, ${stats.colours} colours, ${stats.foreground} text pixels, ${Date.now() - t0} ms`)
    await page.goto('/servers')
  })

  await check(page, 'delete (with confirmation): the row goes away and the API says 404', async () => {
    await page.click(`tr[data-name="${NAME}"] [data-action=delete]`)
    await page.click('[data-testid=confirm-ok]')
    await row(NAME).waitFor({ state: 'detached', timeout: 120000 })
    // The dashboard's delete puts a server into the recycle bin (its QEMU stopped): empty it.
    const gone = await waitGone(serverId, 120000)
    assert(gone, `server ${serverId} still exists`)
  })
  code = 0
} catch {
  code = 1
} finally {
  // Whatever failed above: no server of this test stays (run.sh also kills leftover QEMU).
  if (serverId && !(await waitGone(serverId, 60000).catch(() => false))) console.log(`    warning: server ${serverId} not deleted`)
  await browser.close()
}
process.exit(summary('browser') || code)

/** Deletes the server for good (out of the recycle bin too) and waits for the API's 404. */
async function waitGone(id, timeout) {
  const until = Date.now() + timeout
  while (Date.now() < until) {
    const r = await api.call('GET', `/api/v2/servers/${id}?pending_delete=all`)
    if (r.status === 404) return true
    const st = r.body?.status ?? ''
    if (r.body?.pending_deleted || !/delet|stopping/.test(st)) {
      await api.call('DELETE', `/api/v2/servers/${id}?override_pending_delete=true`)
    }
    await new Promise((res) => setTimeout(res, 1000))
  }
  return false
}
