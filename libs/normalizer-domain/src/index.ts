export * from './units';
export * from './profiles';
export * from './normalize';
export * from './deadband';
