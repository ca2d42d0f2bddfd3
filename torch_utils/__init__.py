# Head3D torch utilities: custom ops, distributed helpers, statistics, misc.
