// The server life cycle in the dashboard: create -> running -> detail (events, tasks) -> console
// (noVNC showing the simulated host's RFB screen)
// -> stop -> ready -> delete, and a second project that sees none of it.
// Needs the region's servers API and a simulated host:
//   BROWSER_AIO_ARGS='--simulated-hosts 1' web/tests/run.sh servers.mjs
// Part of the `browser` phase of scripts/test.sh. (console-vm.mjs does the console against a
// real QEMU guest on the real host agent.)
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkList, checkObject } from '../src/schema.mjs'
import { ADMIN_PASSWORD, ARTIFACTS, ApiClient, assert, check, launch, shot, startServerForm, summary } from './lib.mjs'

const { browser, page } = await launch()
const row = (name) => page.locator(`tr[data-name="${name}"]`)
const statusOf = (name) => page.locator(`tr[data-name="${name}"] [data-testid=status]`)

async function waitStatus(name, want, timeout = 120000) {
  await page.waitForFunction(
    ([n, w]) => document.querySelector(`tr[data-name="${n}"] [data-testid=status]`)?.textContent === w,
    [name, want],
    { timeout },
  )
}

async function confirmAction(selector) {
  await page.click(selector)
  await page.click('[data-testid=confirm-ok]')
}

let code = 1
try {
  const api = new ApiClient()
  let imageId = ''
  let networkId = ''
  await check(null, 'setup: an active image and the default network (API)', async () => {
    await api.login('sysadmin', ADMIN_PASSWORD)
    const file = join(ARTIFACTS, 'server-image.raw')
    writeFileSync(file, Buffer.alloc(16 << 20))
    const resp = await fetch(`${process.env.GATEWAY_URL}/api/v2/images`, {
      method: 'POST',
      headers: {
        Cookie: Object.entries(api.cookies).map(([k, v]) => `${k}=${v}`).join('; '),
        'X-CSRF-Token': api.cookies.cloudpods_csrf,
        'Content-Type': 'application/octet-stream',
        'X-Image-Meta-Name': 'srv-img',
        'X-Image-Meta-Disk_format': 'raw',
      },
      body: Buffer.alloc(16 << 20),
    })
    const img = await resp.json()
    assert(resp.status === 200, JSON.stringify(img))
    imageId = img.id
    for (let i = 0; i < 300; i++) {
      if ((await api.ok('GET', `/api/v2/images/${imageId}`)).status === 'active') break
      await new Promise((r) => setTimeout(r, 200))
    }
    networkId = (await api.ok('GET', '/api/v2/networks/default')).id
  })

  await check(page, 'log in and create a server through the form', async () => {
    const f = await startServerForm(page, { name: 'web-vm', vcpus: 1, memMb: 512, imageId })
    await page.fill(`${f} input[name=disk_size]`, '1')
    await page.waitForSelector(`${f} select[name=network] option[value="${networkId}"]`, { state: 'attached' })
    await page.selectOption(`${f} select[name=network]`, networkId)
    await page.fill(`${f} input[name=password]`, 'Web-Vm-Pw-1234')
    await shot(page, '20-server-create')
    await page.click(`${f} button[type=submit]`)
    await page.waitForURL('**/servers')
    await row('web-vm').waitFor()
  })

  await check(page, 'the server reaches running without a reload', async () => {
    await waitStatus('web-vm', 'running')
    const text = await row('web-vm').innerText()
    assert(/\d+\.\d+\.\d+\.\d+/.test(text), `an IP in the row: ${text}`)
    await shot(page, '21-servers-running')
    const list = await api.ok('GET', '/api/v2/servers?limit=5')
    const problems = checkList('server', list)
    assert(problems.length === 0, problems.join('; '))
  })

  await check(page, 'the detail page shows status, events, tasks and a console button', async () => {
    await page.click('tr[data-name="web-vm"] a')
    await page.waitForSelector('[data-testid=server-detail]')
    await page.waitForSelector('[data-testid=events-list] tbody tr')
    assert(await page.locator('[data-testid=console]').isVisible(), 'the console button is on the detail page')
    await shot(page, '22-server-detail')
    const s = await api.ok('GET', '/api/v2/servers/web-vm')
    assert(checkObject('server', s).length === 0, checkObject('server', s).join('; '))
  })

  await check(page, "the console shows the simulated host's screen through noVNC", async () => {
    await page.click('[data-testid=console]')
    await page.waitForURL('**/servers/*/console')
    // The simulated host's VNC server is a real RFB server drawing a fixed picture.
    await page.waitForFunction(() => document.querySelector('[data-testid=console-state]')?.textContent === 'connected')
    await page.waitForFunction(() => document.querySelector('[data-testid=console-title]')?.textContent?.endsWith(': web-vm'))
    const colours = await page.waitForFunction(() => {
      const c = document.querySelector('.console-screen canvas')
      if (!c || c.width === 0 || c.height === 0) return 0
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
      const seen = new Set()
      for (let i = 0; i < d.length; i += 4 * 97) if (d[i + 3] > 0) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2])
      return seen.size >= 4 ? seen.size : 0
    })
    const size = await page.evaluate(() => {
      const c = document.querySelector('.console-screen canvas')
      return `${c.width}x${c.height}`
    })
    assert(size === '640x400', `the framebuffer's size: ${size}`)
    await shot(page, 'server-console')
    assert((await page.locator('[data-testid=console-problem]').count()) === 0, 'no console problem')
    console.log(`    console: ${size}, ${await colours.jsonValue()} colours sampled`)
    await page.goto('/servers')
  })

  await check(page, 'stop (with confirmation) -> ready', async () => {
    await confirmAction('tr[data-name="web-vm"] [data-action=stop]')
    await waitStatus('web-vm', 'ready')
    await shot(page, '23-server-stopped')
  })

  await check(page, 'a member of another project sees no servers', async () => {
    await api.ok('POST', '/api/v2/projects', { project: { name: 'otherproj' } })
    await api.ok('POST', '/api/v2/users', { user: { name: 'otheruser', password: 'Other-Pw-1234', project: 'otherproj', role: 'member' } })
    const other = new ApiClient()
    await other.login('otheruser', 'Other-Pw-1234')
    const list = await other.ok('GET', '/api/v2/servers')
    assert(list.total === 0 && list.data.length === 0, JSON.stringify(list))
    assert((await other.call('GET', '/api/v2/servers/web-vm')).status === 404, 'web-vm hidden')
  })

  await check(page, 'delete (with confirmation): the row goes away', async () => {
    await confirmAction('tr[data-name="web-vm"] [data-action=delete]')
    await row('web-vm').waitFor({ state: 'detached', timeout: 120000 })
    assert((await statusOf('web-vm').count()) === 0, 'gone')
  })

  await check(page, 'log out', async () => {
    await page.click('[data-testid=logout]')
    await page.waitForURL('**/login**')
  })
  code = 0
} catch {
  code = 1
} finally {
  await browser.close()
}
process.exit(summary('browser') || code)
