import { createApp } from 'vue'
import App from './App.vue'
import { api, setUnauthorizedHandler } from './api'
import { router } from './router'
import { profile } from './store'
import './style.css'

// Any page but the login needs a session: ask the gateway who we are once, then trust 401s.
router.beforeEach(async (to) => {
  if (to.meta.public) return true
  if (!profile.value) {
    try {
      profile.value = await api.user()
    } catch {
      return { path: '/login', query: to.fullPath !== '/servers' ? { next: to.fullPath } : {} }
    }
  }
  return true
})

setUnauthorizedHandler(() => {
  profile.value = null
  if (router.currentRoute.value.path !== '/login') router.replace({ path: '/login', query: { next: router.currentRoute.value.fullPath } })
})

createApp(App).use(router).mount('#app')
