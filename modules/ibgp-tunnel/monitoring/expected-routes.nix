# plan (builtins.fromTOML) -> host name -> { ipv4; ipv6; }: how many routes
# BIRD installs in that host's kernel at least, from what the plan itself
# announces (the reflector's static routes and every client's announcements,
# as reflected), kept by the host's import and kernel-export sets. DN42 routes
# come on top: the plan cannot know them. The core's route model says which;
# this only counts. Builtins only.
(import ../../lib).routes.kernelCounts
