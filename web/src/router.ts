import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import ResourceView from './components/ResourceView.vue'
import * as pages from './views/pages'

const page = (path: string, config: pages.PageConfig): RouteRecordRaw => ({ path, component: ResourceView, props: { ...config } })

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/servers' },
    { path: '/login', component: () => import('./views/LoginView.vue'), meta: { public: true } },
    { path: '/servers', component: () => import('./views/ServersView.vue') },
    { path: '/servers/create', component: () => import('./views/ServerCreateView.vue') },
    { path: '/servers/:id', component: () => import('./views/ServerDetailView.vue') },
    { path: '/servers/:id/console', component: () => import('./views/ConsoleView.vue') },
    { path: '/images', component: () => import('./views/ImagesView.vue') },
    { path: '/keypairs', component: () => import('./views/KeypairsView.vue') },
    page('/networks', pages.networks),
    page('/wires', pages.wires),
    page('/secgroups', pages.secgroups),
    page('/hosts', pages.hosts),
    page('/storages', pages.storages),
    page('/users', pages.users),
    page('/projects', pages.projects),
    { path: '/roleassignments', component: () => import('./views/RoleAssignmentsView.vue') },
    page('/actions', pages.actions),
    { path: '/:rest(.*)*', redirect: '/servers' },
  ],
})
