# The optional components: parts of pgolf a configuration may leave unused.
# The counted code of a configuration (the code archive in train_gpt.py)
# leaves out the sources of the components it does not use
# (config/components.h says which configuration uses which). CMakeLists.txt
# defines PGOLF_HAS_<NAME> to 1 when all of a component's sources are in the
# tree, else 0; the code reaches a component only under
# `if constexpr (kHas<Name>)`. Included by CMakeLists.txt and by
# cmake/embed_sources.cmake; the headers stay in every tree.
set(PGOLF_COMPONENTS TTT GPTQ LQER)
set(PGOLF_COMPONENT_TTT src/eval/ttt.cpp src/eval/lora.cpp)
set(PGOLF_COMPONENT_GPTQ src/export/gptq.cpp src/export/calibrate.cpp)
set(PGOLF_COMPONENT_LQER src/export/lqer.cpp)
